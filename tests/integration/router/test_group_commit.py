"""Group commit (router.group) on a real PostgreSQL: concurrent units share a transaction, yet
each is answered only once its own writes are committed, one unit's failure is its own, one
sender's units keep their order, and a deadlock victim is written again alone."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from models import Contact, Event, Message
from router.api import create_app
from router.db import Database
from router.errors import InvalidInput
from router.repo import events
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent


@pytest.fixture
def pg(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("group commit batches on PostgreSQL; SQLite runs each unit in its own")


async def _names(rt: Runtime) -> list[str]:
    async with rt.db.session() as s:
        return sorted(n for n in await s.scalars(select(Contact.name)) if n)


async def test_units_share_commits_and_each_answer_follows_its_commit(
    rt: Runtime, pg: None
) -> None:
    async def unit(s: AsyncSession, i: int) -> str:
        s.add(Contact(name=f"c{i:02d}", attributes={}))
        await s.flush()
        return f"c{i:02d}"

    async def one(i: int) -> None:
        name = await rt.group.submit(lambda s: unit(s, i), key=f"k{i}")
        # Answered: it must be visible to any other connection now (committed, not pending).
        assert name in await _names(rt)

    await asyncio.gather(*(one(i) for i in range(24)))
    assert await _names(rt) == [f"c{i:02d}" for i in range(24)]
    assert rt.group.units == 24
    assert rt.group.batches < 24  # they were written together, not one transaction each


async def test_a_failing_unit_fails_alone(rt: Runtime, pg: None) -> None:
    async def unit(s: AsyncSession, i: int) -> int:
        s.add(Contact(name=f"c{i:02d}", attributes={}))
        await s.flush()
        if i == 5:
            raise InvalidInput("bad record")  # after writing: its writes must vanish
        return i

    results = await asyncio.gather(
        *(rt.group.submit(lambda s, i=i: unit(s, i)) for i in range(12)), return_exceptions=True
    )
    assert isinstance(results[5], InvalidInput)
    assert [r for j, r in enumerate(results) if j != 5] == [j for j in range(12) if j != 5]
    assert await _names(rt) == [f"c{i:02d}" for i in range(12) if i != 5]
    assert rt.group.batches < 11


async def test_a_batch_indexes_once_and_never_a_failed_units_rows(rt: Runtime, pg: None) -> None:
    """Its search rows and its events: one INSERT each per batch, none of a failed unit."""
    inserts: list[str] = []
    event_inserts: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if statement.startswith("INSERT INTO search_documents"):
            inserts.append(statement)
        if statement.startswith("INSERT INTO events"):
            event_inserts.append(statement)

    async def unit(s: AsyncSession, i: int) -> int:
        contact = Contact(name=f"Zoe{i:02d}", attributes={})
        s.add(contact)
        await s.flush()
        await events.record(s, "contact.created", contact_id=contact.id, tier=1)
        if i == 5:
            raise InvalidInput("bad record")  # after its flush: nothing of it is indexed
        return contact.id

    event.listen(rt.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        results = await asyncio.gather(
            *(rt.group.submit(lambda s, i=i: unit(s, i)) for i in range(12)),
            return_exceptions=True,
        )
    finally:
        event.remove(rt.db.engine.sync_engine, "before_cursor_execute", count)
    assert isinstance(results[5], InvalidInput)
    async with rt.db.session() as s:
        indexed = set(
            await s.scalars(text("SELECT contact_id FROM search_documents WHERE kind = 'contact'"))
        )
        recorded = set(await s.scalars(select(Event.contact_id)))
    assert indexed == recorded == {r for r in results if isinstance(r, int)}
    # One INSERT per batch, not one per unit.
    assert len(inserts) == len(event_inserts) == rt.group.batches < 11


async def test_one_senders_units_keep_their_order(rt: Runtime, pg: None) -> None:
    seen: list[tuple[str, int]] = []

    async def unit(_s: AsyncSession, key: str, i: int) -> None:
        seen.append((key, i))

    await asyncio.gather(
        *(
            rt.group.submit(lambda s, k=k, i=i: unit(s, k, i), key=k)
            for i in range(10)
            for k in ("b", "a")
        )
    )
    assert [i for k, i in seen if k == "a"] == list(range(10))
    assert [i for k, i in seen if k == "b"] == list(range(10))


class _Deadlock(Exception):
    sqlstate = "40P01"


async def test_a_deadlock_victim_is_written_again_alone(rt: Runtime, pg: None) -> None:
    tries: list[int] = []

    async def unit(s: AsyncSession, i: int) -> int:
        s.add(Contact(name=f"c{i:02d}", attributes={}))
        await s.flush()
        if i == 3:
            tries.append(i)
            if len(tries) == 1:
                raise _Deadlock("deadlock detected")
        return i

    results = await asyncio.gather(*(rt.group.submit(lambda s, i=i: unit(s, i)) for i in range(8)))
    assert results == list(range(8))
    assert tries == [3, 3]
    assert await _names(rt) == [f"c{i:02d}" for i in range(8)]


async def test_concurrent_http_deliveries_are_each_stored_once(
    client: httpx.AsyncClient, rt: Runtime, pg: None
) -> None:
    async def post(i: int, copy: int) -> dict[str, Any]:
        r = await client.post(
            "/api/v1/inbound",
            json={
                "contact": {"external_id": f"u{i % 5}"},
                "message": {"external_id": f"m{i}", "text": f"quiero una cita {i}"},
            },
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    answers = await asyncio.gather(*(post(i, c) for i in range(30) for c in (0, 1)))
    # Each message twice (a provider's retry racing the original): stored once, and both
    # answers name the same stored message.
    by_msg: dict[int, set[int]] = {}
    for (i, _c), a in zip([(i, c) for i in range(30) for c in (0, 1)], answers, strict=True):
        by_msg.setdefault(i, set()).add(a["message_id"])
    assert all(len(ids) == 1 for ids in by_msg.values())
    async with rt.db.session() as s:
        stored = await s.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    assert stored == 30
    assert rt.group.batches < rt.group.units


async def test_requests_waiting_on_a_batch_hold_no_pooled_connection(rt: Runtime, pg: None) -> None:
    """Each request's own unit of work (the token look-up) takes a pooled connection. If the
    requests kept it while waiting for the batch, a pool smaller than the concurrency would
    leave the batch none: every request would wait for ever."""
    async with rt.db.engine.connect() as conn:
        schema = str(await conn.scalar(text("SELECT current_schema()")))
    small = Database(
        rt.db.url,
        connect_args={"server_settings": {"search_path": schema}},
        pool_size=2,
        max_overflow=0,
        pool_timeout=10,
    )
    other = Runtime(settings=rt.settings, db=small, policy=rt.policy, channels=rt.channels)
    _, token = await make_agent(rt, name="App backend", role="integration")
    app = create_app(runtime=other)
    app.state.runtime = other
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://careline.test") as c:

            async def post(i: int) -> int:
                r = await c.post(
                    "/api/v1/inbound",
                    json={
                        "contact": {"external_id": f"u{i}"},
                        "message": {"external_id": f"m{i}", "text": "hola"},
                    },
                    headers=auth(token),
                )
                return r.status_code

            codes = await asyncio.wait_for(asyncio.gather(*(post(i) for i in range(12))), 60)
    finally:
        await small.dispose()
    assert codes == [200] * 12


async def test_a_batch_runs_without_savepoints_until_a_unit_fails(rt: Runtime, pg: None) -> None:
    """Savepoints cost two statements a unit: a batch first goes without. When a unit fails,
    nothing of that attempt is kept and the batch goes again with savepoints, so only the
    failing unit fails (and the others are written once, not twice)."""
    seen: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    async def unit(s: AsyncSession, i: int, fail: bool) -> int:
        s.add(Contact(name=f"c{i:02d}", attributes={}))
        await s.flush()
        if fail and i == 13:
            raise InvalidInput("bad record")
        return i

    engine = rt.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        clean = await asyncio.gather(
            *(rt.group.submit(lambda s, i=i: unit(s, i, False)) for i in range(8))
        )
        assert clean == list(range(8))
        assert "SAVEPOINT" not in seen
        seen.clear()
        mixed = await asyncio.gather(
            *(rt.group.submit(lambda s, i=i: unit(s, i + 10, True)) for i in range(8)),
            return_exceptions=True,
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert "SAVEPOINT" in seen  # the second attempt
    assert [type(r).__name__ for r in mixed].count("InvalidInput") == 1
    names = await _names(rt)
    assert names == sorted(
        [f"c{i:02d}" for i in range(8)] + [f"c{i:02d}" for i in range(10, 18) if i != 13]
    )
