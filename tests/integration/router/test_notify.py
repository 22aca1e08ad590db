"""Two instances on one PostgreSQL: a commit on one wakes the other's waiters at once, and the
LISTEN connection outlives failures (any connect error; its backend being killed, which is
what a PostgreSQL restart looks like from here)."""

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

PG_ONLY = "LISTEN/NOTIFY is PostgreSQL's; the embedded default is one process"


async def _instance_b(rt: Runtime) -> tuple[Runtime, str]:
    """A second instance: its own engine on the test's database and schema, its LISTEN
    connection named after the schema (tests may run in parallel: find our own listener)."""
    async with rt.db.engine.connect() as conn:
        schema = str(await conn.scalar(text("SELECT current_schema()")))
    name = f"careline-listen-{schema}"
    other = Database(rt.db.url, connect_args={"server_settings": {"search_path": schema}})
    other.listen_kwargs = {"server_settings": {"search_path": schema, "application_name": name}}
    return Runtime(settings=rt.settings, db=other, policy=rt.policy, channels={}), name


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


async def _wakes(rt: Runtime, b: Runtime, external_id: str) -> None:
    """A message stored on instance A wakes B's waiters through the notification, not B's own
    30-second timeout (timed from the commit: the first ingest also loads language models)."""
    waiter = asyncio.create_task(b.events.wait(30.0))
    await asyncio.sleep(0.05)
    async with rt.db.session() as s:
        await ingest.ingest(
            s,
            rt,
            InboundMessage(
                channel="app",
                external_id=external_id,
                sender=Sender(external_id="u1"),
                text="hola",
                received_at=rt.now(),
            ),
        )
    committed = time.monotonic()
    await asyncio.wait_for(waiter, 40)
    assert time.monotonic() - committed < 10.0


async def test_a_commit_on_one_instance_wakes_another(rt: Runtime, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip(PG_ONLY)
    b, name = await _instance_b(rt)
    stop = asyncio.Event()
    listener = asyncio.create_task(notify.listen(b, stop))
    try:
        await _wait_for_backend(rt.db, name)
        await asyncio.sleep(0.2)  # it issues LISTEN right after connecting
        await _wakes(rt, b, "n1")
    finally:
        stop.set()
        await asyncio.wait_for(listener, 10)
        await b.db.dispose()


async def test_the_listener_survives_errors_and_a_killed_connection(
    rt: Runtime, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "postgresql":
        pytest.skip(PG_ONLY)
    b, name = await _instance_b(rt)

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
        await asyncio.sleep(0.2)  # LISTEN follows the connect
        await _wakes(rt, b, "r1")
    finally:
        stop.set()
        await asyncio.wait_for(listener, 10)
        await b.db.dispose()
