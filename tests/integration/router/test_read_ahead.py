"""The batch's read-ahead (router.repo.batch, flows.ingest.read_ahead) on a real PostgreSQL:
a batch looks each sender, conversation and timer set up once, and what it stores is exactly
what one-by-one ingest stores: one conversation per contact, each timer once, capacity
respected, and a failed unit in the middle leaves the units after it correct."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from models import Contact, Conversation, Message, SlaTimer
from models.messages import InboundMessage, Sender
from router import metrics
from router.errors import InvalidInput
from router.flows import ingest, outbound
from router.repo import batch
from router.repo.queues import queue_by_name
from router.runtime import Runtime
from tests.conftest import make_agent
from tests.support.sql import recorded


@pytest.fixture
def pg(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("read-ahead serves group commit batches, which form on PostgreSQL only")


def _msg(rt: Runtime, user: str, ext: str, text: str) -> InboundMessage:
    return InboundMessage(
        channel="app",
        external_id=ext,
        sender=Sender(external_id=user),
        text=text,
        received_at=rt.now(),
    )


async def _batch(rt: Runtime, msgs: list[InboundMessage]) -> list[Any]:
    """Submit every message at once: the runner finds them all pending (one or two batches)."""
    return await asyncio.gather(
        *(
            rt.group.submit(
                lambda s, m=m: ingest.ingest(s, rt, m),
                key=f"app:{m.sender.external_id}",
                isolated=True,
                ahead=ingest.ahead(rt, m.channel, m.sender, m.external_id),
            )
            for m in msgs
        ),
        return_exceptions=True,
    )


def _stored_count() -> float:
    return float(metrics.INGEST_TOTAL.labels("app", "stored")._value.get())


async def _store_state(rt: Runtime) -> tuple[Counter[str], Counter[tuple[int, str]], int]:
    async with rt.db.session() as s:
        convs = Counter(
            n
            for n in await s.scalars(
                select(Contact.name).join(Conversation, Conversation.contact_id == Contact.id)
            )
        )
        timers = Counter(
            (cid, kind)
            for cid, kind in (await s.execute(select(SlaTimer.conversation_id, SlaTimer.kind)))
        )
        stored = int(await s.scalar(select(func.count()).select_from(Message)) or 0)
    return convs, timers, stored


async def test_a_batch_reads_each_sender_once_and_stores_what_one_by_one_would(
    rt: Runtime, pg: None
) -> None:
    # Three known customers with an open conversation each, then a batch: two follow-ups
    # each, and two new customers writing twice each.
    for u in ("k1", "k2", "k3"):
        [first] = await _batch(rt, [_msg(rt, u, f"{u}-0", "quiero una cita")])
        assert isinstance(first, ingest.IngestResult)
    batches = rt.group.batches
    msgs = [_msg(rt, u, f"{u}-{i}", f"otra cosa {i}") for u in ("k1", "k2", "k3") for i in (1, 2)]
    msgs += [_msg(rt, u, f"{u}-{i}", "hola, una factura") for u in ("n1", "n2") for i in (0, 1)]
    # A provider's retry of a message stored before, and two copies of one in the batch.
    copies = [_msg(rt, "k2", "k2-0", "quiero una cita"), _msg(rt, "k1", "k1-1", "otra cosa 1")]
    with recorded(rt) as seen:
        results = await _batch(rt, msgs + copies)
    assert all(isinstance(r, ingest.IngestResult) for r in results), results
    assert rt.group.batches - batches <= 2  # written together, not one transaction each
    *results, old_copy, new_copy = results
    assert old_copy.duplicate
    assert new_copy.duplicate
    assert new_copy.message_id == results[0].message_id
    assert not any(r.duplicate for r in results)
    # Copies known ahead are answered without a conflict: no batch had to go again.
    assert not [q for q in seen if q.startswith("SAVEPOINT")]

    # One conversation per contact: the follow-ups continued theirs, a new customer's
    # second message continued the conversation their first one opened in the same batch.
    by_user: dict[str, set[int]] = {}
    for m, r in zip(msgs, results, strict=True):
        by_user.setdefault(m.sender.external_id, set()).add(r.conversation_id)
    assert all(len(ids) == 1 for ids in by_user.values()), by_user
    async with rt.db.session() as s:
        contacts = int(await s.scalar(select(func.count()).select_from(Contact)) or 0)
        convs = int(await s.scalar(select(func.count()).select_from(Conversation)) or 0)
        kinds = [
            (cid, kind)
            for cid, kind in await s.execute(select(SlaTimer.conversation_id, SlaTimer.kind))
        ]
    assert contacts == 5
    assert convs == 5
    assert len(kinds) == len(set(kinds)), "a timer armed twice"

    # The look-ups a unit used to make each: once per batch now.
    identity_reads = [q for q in seen if q.startswith("SELECT contact_identities")]
    conv_reads = [q for q in seen if q.startswith("SELECT conversations.") and "FOR UPDATE" in q]
    timer_reads = [q for q in seen if q.startswith("SELECT sla_timers")]
    n_batches = rt.group.batches - batches
    assert len(identity_reads) <= n_batches, identity_reads
    assert len(conv_reads) <= n_batches, conv_reads
    assert len(timer_reads) <= n_batches, timer_reads


async def test_assignment_in_a_batch_sees_the_loads_of_the_units_before(
    rt: Runtime, pg: None
) -> None:
    """The loads are read once per batch; an assignment by one unit counts for the next, so
    an agent with room for one gets one, not the whole batch."""
    agent_id, _ = await make_agent(rt, name="Ana", role="agent_l1", languages=["es"], capacity=1)
    results = await _batch(
        rt, [_msg(rt, f"c{i}", f"c{i}-0", "necesito una cita") for i in range(6)]
    )
    assert all(isinstance(r, ingest.IngestResult) for r in results), results
    async with rt.db.session() as s:
        assigned = int(
            await s.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(Conversation.assignee_id == agent_id)
            )
            or 0
        )
    assert assigned == 1


async def test_a_failed_unit_mid_batch_leaves_the_later_units_correct(
    rt: Runtime, pg: None
) -> None:
    """A unit that fails after writing rolls its savepoint back; the snapshot read before it
    may name objects the rollback expired, so the units after it look up for themselves."""
    [first] = await _batch(rt, [_msg(rt, "k1", "k1-0", "quiero una cita")])
    assert isinstance(first, ingest.IngestResult)

    async def failing(s: Any) -> None:
        await ingest.ingest(s, rt, _msg(rt, "k1", "k1-bad", "esto falla"))
        raise InvalidInput("bad record")  # after its writes: they must vanish

    msgs = [_msg(rt, "k1", f"k1-{i}", f"otra cosa {i}") for i in (1, 2)]
    counted = _stored_count()
    jobs = [
        rt.group.submit(
            lambda s, m=m: ingest.ingest(s, rt, m),
            key=f"a{i}",
            isolated=True,
            ahead=ingest.ahead(rt, m.channel, m.sender),
        )
        for i, m in enumerate(msgs[:1])
    ]
    jobs.append(
        rt.group.submit(failing, key="b", ahead=ingest.ahead(rt, "app", Sender(external_id="k1")))
    )
    jobs.append(
        rt.group.submit(
            lambda s: ingest.ingest(s, rt, msgs[1]),
            key="c",
            isolated=True,
            ahead=ingest.ahead(rt, "app", msgs[1].sender),
        )
    )
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert isinstance(results[1], InvalidInput)
    ok = [r for r in results if isinstance(r, ingest.IngestResult)]
    assert len(ok) == 2
    # Counted once each, at the commit: not by the batch's first attempt (which failed and
    # was written again), nor for the unit that was rolled back.
    assert _stored_count() - counted == 2
    assert {r.conversation_id for r in ok} == {first.conversation_id}
    async with rt.db.session() as s:
        texts = set(
            await s.scalars(
                select(Message.text).where(Message.conversation_id == first.conversation_id)
            )
        )
    assert "esto falla" not in texts
    assert {"otra cosa 1", "otra cosa 2"} <= texts
    _convs, timers, _ = await _store_state(rt)
    assert all(n == 1 for n in timers.values()), timers


async def test_the_wait_depth_in_a_batch_counts_what_the_units_changed_in_memory(
    rt: Runtime,
) -> None:
    """In a batch the queue depth is counted once, without flushing the units before (so
    their writes go out together), and corrected for their unflushed changes: it must equal
    the count a flush then a query gives, whatever entered or left the queue in memory."""
    agent_id, _ = await make_agent(rt, name="Ana", role="agent_l1", languages=["es"])
    async with rt.db.session() as s:
        q = await queue_by_name(s, "first_line")
        other = await queue_by_name(s, "second_line")
        contact = Contact(name="x", attributes={})
        s.add(contact)
        await s.flush()

        def conv(queue_id: int, assignee: int | None = None) -> Conversation:
            c = Conversation(
                contact_id=contact.id,
                channel="app",
                status="open",
                queue_id=queue_id,
                priority="normal",
                assignee_id=assignee,
                tags=[],
                routing_reasons=[],
                created_at=rt.now(),
                updated_at=rt.now(),
            )
            s.add(c)
            return c

        leaving, asking, joining, moved = conv(q.id), conv(q.id), conv(q.id, agent_id), conv(q.id)
        await s.flush()
        ids = (leaving.id, asking.id, joining.id, moved.id)

    async def flushed_count(s: Any, exclude: int) -> int:
        await s.flush()
        return int(
            await s.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(
                    Conversation.queue_id == q.id,
                    Conversation.status == "open",
                    Conversation.assignee_id.is_(None),
                    Conversation.id != exclude,
                )
            )
            or 0
        )

    async with rt.db.session() as s:
        batch.start(s)
        leaving, asking, joining, moved = [await s.get(Conversation, i) for i in ids]
        assert await outbound._depth(s, q, asking.id) == 2  # leaving, moved (cached now)
        leaving.assignee_id = agent_id  # leaves the queue
        joining.assignee_id = None  # back in it
        moved.queue_id = other.id  # routed elsewhere
        for _ in range(2):
            s.add(  # new, unflushed
                Conversation(
                    contact_id=asking.contact_id,
                    channel="app",
                    status="open",
                    queue_id=q.id,
                    priority="normal",
                    tags=[],
                    routing_reasons=[],
                    created_at=rt.now(),
                    updated_at=rt.now(),
                )
            )
        asking.priority = "high"  # the one asking never counts itself, changed or not
        in_memory = await outbound._depth(s, q, asking.id)
        assert in_memory == await flushed_count(s, asking.id) == 3  # joining, the two new
        # After that flush the cached count is stale: it is read again.
        joining.status = "pending"
        assert await outbound._depth(s, q, asking.id) == await flushed_count(s, asking.id) == 2
        await s.rollback()
