"""Events are written once, at the transaction's commit (router.repo.events): in the order
recorded, never those of a savepoint or transaction that rolled back, and visible to any
statement of the same transaction that reads `events`."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Conversation, Event
from router.repo import events
from router.runtime import Runtime


async def _types(rt: Runtime) -> list[str]:
    async with rt.db.session() as s:
        return list(await s.scalars(select(Event.type).order_by(Event.id)))


async def test_one_insert_at_commit_in_the_order_recorded(rt: Runtime) -> None:
    inserts: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if statement.startswith("INSERT INTO events"):
            inserts.append(statement)

    event.listen(rt.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with rt.db.session() as s:
            for t in ("a.first", "b.second", "c.third"):
                await events.record(s, t, contact_id=1, tier=1)
                await s.flush()  # flushes in between do not write them one by one
    finally:
        event.remove(rt.db.engine.sync_engine, "before_cursor_execute", count)
    assert len(inserts) == 1
    assert await _types(rt) == ["a.first", "b.second", "c.third"]


async def test_a_rolled_back_savepoint_takes_its_events_with_it(rt: Runtime) -> None:
    async def failing_unit(s: AsyncSession) -> None:
        async with s.begin_nested():
            await events.record(s, "dropped", contact_id=1, tier=1)
            async with s.begin_nested():  # released, but inside the one that fails
                await events.record(s, "dropped.inner", contact_id=1, tier=1)
            raise RuntimeError("the unit fails")

    async with rt.db.session() as s:
        await events.record(s, "kept.before", contact_id=1, tier=1)
        with pytest.raises(RuntimeError):
            await failing_unit(s)
        async with s.begin_nested():
            await events.record(s, "kept.released", contact_id=1, tier=1)
    assert await _types(rt) == ["kept.before", "kept.released"]


async def test_a_rolled_back_transaction_writes_none(rt: Runtime) -> None:
    async def failing() -> None:
        async with rt.db.session() as s:
            await events.record(s, "never", contact_id=1, tier=1)
            raise RuntimeError("fails before commit")

    with pytest.raises(RuntimeError):
        await failing()
    async with rt.db.session() as s:
        await events.record(s, "later", contact_id=1, tier=1)
    assert await _types(rt) == ["later"]


async def test_a_read_in_the_same_transaction_sees_its_events(rt: Runtime) -> None:
    # The once-only crisis alert asks whether this transaction already recorded it.
    conv = Conversation(id=4242, contact_id=1)  # (record reads only its ids)
    async with rt.db.session() as s:
        assert not await events.crisis_flagged(s, 4242)
        await events.record(s, "crisis.detected", conversation=conv, tier=2)
        assert await events.crisis_flagged(s, 4242)
