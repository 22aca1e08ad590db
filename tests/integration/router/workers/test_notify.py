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
from router.bus import EventBus
from router.db import Database
from router.flows import ingest
from router.runtime import Runtime
from router.workers import listen as notify
from tests.support.waits import wait_for

PG_ONLY = "LISTEN/NOTIFY is PostgreSQL's; the embedded default is one process"


class ObservedBus(EventBus):
    """B's event bus, observable: how often it was woken, and how many waits began on it.

    The listener wakes everything right after its LISTEN is in place (to catch up on what was
    committed while it was not listening), so a new wake-up after connecting is the sign that
    LISTEN is active. (Other test runs on the same database NOTIFY it too: `_listening` also
    checks the LISTEN in pg_stat_activity.)"""

    def __init__(self) -> None:
        super().__init__()
        self.wakes = 0
        self.waits = 0  # only ever grows: a wait may end (woken) before anyone looks

    def wake(self) -> None:
        self.wakes += 1
        super().wake()

    async def wait(self, seconds: float) -> None:
        # Counted before it registers: nothing else runs until the wait is registered.
        self.waits += 1
        await super().wait(seconds)


def _bus(b: Runtime) -> ObservedBus:
    assert isinstance(b.events, ObservedBus)
    return b.events


async def _instance_b(rt: Runtime) -> tuple[Runtime, str]:
    """A second instance: its own engine on the test's database and schema, its LISTEN
    connection named after the schema (tests may run in parallel: find our own listener)."""
    async with rt.db.engine.connect() as conn:
        schema = str(await conn.scalar(text("SELECT current_schema()")))
    name = f"careline-listen-{schema}"
    other = Database(rt.db.url, connect_args={"server_settings": {"search_path": schema}})
    other.listen_kwargs = {"server_settings": {"search_path": schema, "application_name": name}}
    b = Runtime(settings=rt.settings, db=other, policy=rt.policy, channels={}, events=ObservedBus())
    return b, name


async def _backend_pid(db: Database, name: str) -> int | None:
    async with db.engine.connect() as conn:
        pid = await conn.scalar(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"), {"n": name}
        )
    return int(pid) if pid is not None else None


async def _wait_for_backend(db: Database, name: str, *, other_than: int | None = None) -> int:
    async def found() -> int | None:
        pid = await _backend_pid(db, name)
        return pid if pid is not None and pid != other_than else None

    pid = await wait_for(
        found, interval=0.1, what=f"LISTEN connection {name!r} (other than {other_than})"
    )
    assert pid is not None
    return pid


async def _has_listened(db: Database, pid: int) -> bool:
    """Whether backend `pid` has finished its LISTEN (the last statement pg_stat_activity
    shows; the only later one is the listener's periodic `SELECT 1` check)."""
    async with db.engine.connect() as conn:
        last = await conn.scalar(
            text("SELECT query FROM pg_stat_activity WHERE pid = :p AND state = 'idle'"),
            {"p": pid},
        )
    return last is not None and (str(last).upper().startswith("LISTEN") or last == "SELECT 1")


async def _listening(rt: Runtime, b: Runtime, pid: int, *, after: int = 0) -> int:
    """Wait until B's listener is listening on backend `pid`: the server has run its LISTEN,
    and B was woken more than `after` times (the listener's catch-up wake-up, which follows
    `add_listener`, so the callback is registered too). Returns B's wake-up count."""
    bus = _bus(b)

    async def listening() -> int:
        return bus.wakes if bus.wakes > after and await _has_listened(rt.db, pid) else 0

    return await wait_for(
        listening, interval=0.05, what=f"B's listener to LISTEN on backend {pid} (after {after})"
    )


async def _wakes(rt: Runtime, b: Runtime, external_id: str) -> None:
    """A message stored on instance A wakes B's waiters through the notification, not B's own
    30-second timeout (timed from the commit: the first ingest also loads language models)."""
    bus = _bus(b)
    waits = bus.waits
    waiter = asyncio.create_task(bus.wait(30.0))
    # Waiting before the commit: a wake-up with nobody waiting is not kept.
    await wait_for(lambda: bus.waits > waits, what="B's waiter to be waiting")
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
        pid = await _wait_for_backend(rt.db, name)
        await _listening(rt, b, pid)  # it issues LISTEN right after connecting
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
        listened = await _listening(rt, b, first)  # the first connection's LISTEN is in place
        async with rt.db.engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        second = await _wait_for_backend(rt.db, name, other_than=first)
        assert not listener.done()

        # And it delivers again: a commit elsewhere wakes this instance.
        await _listening(rt, b, second, after=listened)  # LISTEN follows the connect
        await _wakes(rt, b, "r1")
    finally:
        stop.set()
        await asyncio.wait_for(listener, 10)
        await b.db.dispose()
