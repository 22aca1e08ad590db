"""The LISTEN connection outlives failures: any connect error, and its backend being killed
(what a PostgreSQL restart looks like from here)."""

from __future__ import annotations

import asyncio
import time
import types
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text

from models.messages import InboundMessage, Sender
from router import ingest, notify
from router.db import Database
from router.runtime import Runtime


async def _backend_pid(db: Database, name: str) -> int | None:
    async with db.engine.connect() as conn:
        pid = await conn.scalar(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"), {"n": name}
        )
    return int(pid) if pid is not None else None


async def _wait_for_backend(db: Database, name: str, *, other_than: int | None = None) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = await _backend_pid(db, name)
        if pid is not None and pid != other_than:
            return pid
        await asyncio.sleep(0.1)
    raise AssertionError(f"no LISTEN connection {name!r} (other than {other_than})")


async def test_the_listener_survives_errors_and_a_killed_connection(
    rt: Runtime, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; the embedded default is one process")
    async with rt.db.engine.connect() as conn:
        schema = str(await conn.scalar(text("SELECT current_schema()")))
    name = f"careline-listen-{schema}"  # tests run in parallel: find our own listener
    other = Database(rt.db.url, connect_args={"server_settings": {"search_path": schema}})
    other.listen_kwargs = {"server_settings": {"search_path": schema, "application_name": name}}
    b = Runtime(settings=rt.settings, db=other, policy=rt.policy, channels={})

    attempts = 0

    async def flaky_connect(*args: Any, **kwargs: Any) -> Any:
        nonlocal attempts
        attempts += 1
        if attempts == 1:  # neither an OSError nor a PostgresError: it used to kill the task
            raise asyncpg.InterfaceError(
                "cannot perform operation: another operation is in progress"
            )
        return await asyncpg.connect(*args, **kwargs)

    monkeypatch.setattr(notify, "asyncpg", types.SimpleNamespace(connect=flaky_connect))
    stop = asyncio.Event()
    # check_s is long: only the termination callback can notice the killed connection in time.
    listener = asyncio.create_task(notify.listen(b, stop, retry_s=0.1, check_s=60))
    try:
        first = await _wait_for_backend(rt.db, name)
        assert attempts == 2
        async with rt.db.engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await _wait_for_backend(rt.db, name, other_than=first)
        assert not listener.done()

        # And it delivers again: a commit elsewhere wakes this instance.
        waiter = asyncio.create_task(b.events.wait(30.0))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        async with rt.db.session() as s:
            await ingest.ingest(
                s,
                rt,
                InboundMessage(
                    channel="app",
                    external_id="r1",
                    sender=Sender(external_id="u1"),
                    text="hola",
                    received_at=rt.now(),
                ),
            )
        await asyncio.wait_for(waiter, 30)
        assert time.monotonic() - t0 < 10  # the notification, not the 30-second timeout
    finally:
        stop.set()
        await asyncio.wait_for(listener, 10)
        await other.dispose()
