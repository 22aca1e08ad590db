"""Two instances on one PostgreSQL: a commit on one wakes the other's waiters at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from models.messages import InboundMessage, Sender
from router import ingest, notify
from router.db import Database
from router.runtime import Runtime


async def test_a_commit_on_one_instance_wakes_another(rt: Runtime, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; the embedded default is one process")
    # Instance B: its own engine on the same database (and the test's schema).
    schema = await _schema(rt.db)
    other = Database(rt.db.url, connect_args={"server_settings": {"search_path": schema}})
    other.listen_kwargs = {"server_settings": {"search_path": schema}}
    b = Runtime(settings=rt.settings, db=other, policy=rt.policy, channels={})
    stop = asyncio.Event()
    before = await _listeners(rt.db)
    listener = asyncio.create_task(notify.listen(b, stop))
    try:
        for _ in range(300):  # until B's LISTEN connection is up (not a fixed sleep)
            if await _listeners(rt.db) - before:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # it issues LISTEN right after connecting
        waiter = asyncio.create_task(_timed_wait(b))
        await asyncio.sleep(0.05)
        async with rt.db.session() as s:  # instance A stores a message
            await ingest.ingest(
                s,
                rt,
                InboundMessage(
                    channel="app",
                    external_id="n1",
                    sender=Sender(external_id="u1"),
                    text="hola",
                    received_at=rt.now(),
                ),
            )
        committed = time.monotonic()
        woken = await asyncio.wait_for(waiter, 40)
        # Without the notification B's waiter would sleep its full 30 s. (Timed from the
        # commit: the first ingest also loads the language models.)
        assert woken - committed < 10.0
    finally:
        stop.set()
        await asyncio.wait_for(listener, 10)
        await other.dispose()


async def _timed_wait(b: Runtime) -> float:
    """When B's waiter woke (monotonic clock)."""
    await b.events.wait(30.0)
    return time.monotonic()


async def _listeners(db: Database) -> set[int]:
    from sqlalchemy import text

    sql = "SELECT pid FROM pg_stat_activity WHERE application_name = 'careline-listen'"
    async with db.engine.connect() as conn:
        return set((await conn.execute(text(sql))).scalars())


async def _schema(db: Database) -> str:
    from sqlalchemy import text

    async with db.engine.connect() as conn:
        return str(await conn.scalar(text("SELECT current_schema()")))
