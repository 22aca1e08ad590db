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
    listener = asyncio.create_task(notify.listen(b, stop))
    try:
        await asyncio.sleep(0.5)  # let it connect and LISTEN
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
        waited = await asyncio.wait_for(waiter, 10)
        # Without the notification B would only notice at its 5-second poll.
        assert waited < 2.0
    finally:
        stop.set()
        await asyncio.wait_for(listener, 10)
        await other.dispose()


async def _timed_wait(b: Runtime) -> float:
    t0 = time.monotonic()
    await b.events.wait(5.0)
    return time.monotonic() - t0


async def _schema(db: Database) -> str:
    from sqlalchemy import text

    async with db.engine.connect() as conn:
        return str(await conn.scalar(text("SELECT current_schema()")))
