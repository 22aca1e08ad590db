"""Cross-instance wake-ups on PostgreSQL with LISTEN/NOTIFY.

Units of work that record events send `NOTIFY careline` inside their transaction, so it is
delivered exactly when the data is visible. Every instance listens on one dedicated
connection and wakes its local waiters (event streams, web chat sockets, outbox, SLA
scheduler). The notification carries nothing: waiters read the tables, and their polling stays
as the safety net while the listener reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from router.db import CONNECT_TIMEOUT_S
from router.runtime import Runtime
from router.wake import WAKE_TOPICS

log = logging.getLogger(__name__)
CHANNEL = "careline"
APPLICATION_NAME = "careline-listen"


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """`postgresql+asyncpg://…` → `postgresql://…` for a plain asyncpg connection."""
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def listen(
    rt: Runtime, stop: asyncio.Event, *, retry_s: float = 2.0, check_s: float = 5.0
) -> None:
    """Hold a LISTEN connection until `stop`; reconnect after failures, whatever they are.

    This task must outlive any database outage: if it died, other instances' commits would
    only be noticed at the next poll, for the rest of the process's life.
    """
    if rt.db.dialect != "postgresql":
        return

    def on_notify(
        _conn: Any = None, _pid: Any = None, _channel: Any = None, payload: Any = ""
    ) -> None:
        # The payload names what the commit concerns; an empty one (an operator's bare
        # `NOTIFY careline`) wakes everything.
        topics = frozenset(str(payload).split(",")) if payload else WAKE_TOPICS
        rt.wake(topics)

    # Named, so operators (and the fault tests) can see each instance's listener in
    # pg_stat_activity.
    kwargs = dict(rt.db.listen_kwargs)
    settings = {"application_name": APPLICATION_NAME, **kwargs.pop("server_settings", {})}
    connect_kwargs = {"timeout": CONNECT_TIMEOUT_S, "server_settings": settings, **kwargs}
    failures = 0
    while not stop.is_set():
        conn: Any = None
        lost = asyncio.Event()
        try:
            conn = await asyncpg.connect(asyncpg_dsn(rt.db.url), **connect_kwargs)
            # Told at once when the server goes away (restart, failover), not at the next check.
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            await conn.add_listener(CHANNEL, on_notify)
            if failures:
                log.info("LISTEN connection restored", extra={"failures": failures})
            failures = 0
            on_notify()  # anything committed while we were not listening
            while not stop.is_set() and not lost.is_set() and not conn.is_closed():
                await _first(stop, lost, within=check_s)
                if not stop.is_set() and not lost.is_set() and not conn.is_closed():
                    # A half-open connection (the peer vanished without a FIN) looks alive
                    # and delivers nothing: a round trip proves it is not.
                    await asyncio.wait_for(conn.execute("SELECT 1"), check_s)
            if not stop.is_set():
                log.warning("LISTEN connection lost; reconnecting")
        except Exception as exc:  # any failure (not only OSError/PostgresError): never die
            failures += 1
            log.warning("LISTEN connection failed; retrying", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), retry_s)
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)


async def _first(*events: asyncio.Event, within: float) -> None:
    """Wait until one of `events` is set, at most `within` seconds."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
