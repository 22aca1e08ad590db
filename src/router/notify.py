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

from router.runtime import Runtime

log = logging.getLogger(__name__)
CHANNEL = "careline"


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """`postgresql+asyncpg://…` → `postgresql://…` for a plain asyncpg connection."""
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def listen(rt: Runtime, stop: asyncio.Event, *, retry_s: float = 2.0) -> None:
    """Hold a LISTEN connection until `stop`; reconnect after failures."""
    if rt.db.dialect != "postgresql":
        return

    def on_notify(*_args: Any) -> None:
        rt.events.wake()
        rt.outbox_wake.wake()
        rt.sla_wake.wake()

    while not stop.is_set():
        conn: Any = None
        try:
            conn = await asyncpg.connect(asyncpg_dsn(rt.db.url), **rt.db.listen_kwargs)
            await conn.add_listener(CHANNEL, on_notify)
            on_notify()  # anything committed while we were not listening
            while not stop.is_set() and not conn.is_closed():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 5.0)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("LISTEN connection failed; retrying", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), retry_s)
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
