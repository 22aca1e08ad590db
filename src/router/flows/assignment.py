"""Assignment I/O: load agent loads, ask the pure `assign` module, write with compare-and-set."""

from __future__ import annotations

import statistics
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from models import Agent, Assignment, Conversation, Queue
from models.vocab import ACTIVE_STATUSES, WORKING_ROLES
from router.decide import assign
from router.repo import batch
from router.repo.events import conv_event
from router.repo.queues import queue_of
from router.runtime import Runtime


async def agent_loads(session: AsyncSession, tier: int | None = None) -> list[assign.AgentLoad]:
    """The online agents (of `tier`) and their open conversations; read once per batch."""
    snap = batch.active(session)
    if snap is not None and tier in snap.loads:
        return list(snap.loads[tier])
    if snap is not None and None in snap.loads and snap.agent_tiers is not None:
        # Every tier's were read ahead (and kept current): this tier's are among them.
        loads = [a for a in snap.loads[None] if snap.agent_tiers.get(a.id) == tier]
    else:
        loads = await _read_loads(session, tier)
    if snap is not None:
        snap.loads[tier] = loads  # kept current by `assign_to` and `unassign`
    return list(loads)


async def read_ahead_loads(session: AsyncSession) -> None:
    """Every online agent's load, before a batch's units run: read in a unit, the query
    would flush the units before it on their own instead of with the batch."""
    snap = batch.start(session)
    if None in snap.loads:
        return
    tiers: dict[int, int | None] = {}
    snap.loads[None] = await _read_loads(session, None, tiers)
    snap.agent_tiers = tiers


async def _read_loads(
    session: AsyncSession, tier: int | None, tiers: dict[int, int | None] | None = None
) -> list[assign.AgentLoad]:
    # Only online agents can take work (the pure chooser would drop the others anyway).
    stmt = select(Agent).where(
        Agent.active.is_(True), Agent.role.in_(WORKING_ROLES), Agent.presence == "online"
    )
    if tier is not None:
        stmt = stmt.where(Agent.tier == tier)
    agents = list(await session.scalars(stmt))
    if tiers is not None:
        tiers.update((a.id, a.tier) for a in agents)  # as stored (NULL is no tier's)
    if not agents:
        return []
    counts = dict(
        (
            await session.execute(
                select(Conversation.assignee_id, func.count())
                .where(
                    Conversation.status.in_(ACTIVE_STATUSES),
                    Conversation.assignee_id.in_([a.id for a in agents]),
                )
                .group_by(Conversation.assignee_id)
            )
        ).all()
    )
    return [
        assign.AgentLoad(
            id=a.id,
            tier=a.tier or 1,
            languages=frozenset(a.languages or ()),
            skills=frozenset(a.skills or ()),
            capacity=a.capacity,
            open_count=int(counts.get(a.id, 0)),
            presence=a.presence,
            last_assigned_at=a.last_assigned_at,
            supervisor=a.role == "supervisor",
        )
        for a in agents
    ]


def _for_assign(rt: Runtime, conv: Conversation, q: Queue) -> assign.ConvForAssign:
    try:
        skills = frozenset(rt.policy.queue(q.name).skills)
    except KeyError:
        skills = frozenset()
    return assign.ConvForAssign(
        id=conv.id,
        tier=q.tier,
        language=conv.language,
        priority=conv.priority,
        skills=skills,
        waiting_since=conv.waiting_since or conv.created_at,
        urgent=assign.is_urgent(conv.tags),
    )


def _last_resort(rt: Runtime) -> bool:
    return rt.policy.escalation.supervisor_last_resort


def _auto_reason(reason: str, choice: assign.Choice) -> str:
    # Shown to agents and supervisors: urgent work above capacity is a choice, not an accident.
    return f"{reason} (urgent: above capacity)" if choice.over_capacity else reason


async def _take(
    session: AsyncSession,
    conv: Conversation,
    choice: assign.Choice | None,
    now: datetime,
    reason: str,
) -> int | None:
    """Assign ``conv`` to the chosen agent if it is still free; the agent's id, or None."""
    if choice is None:
        return None
    ok = await assign_to(
        session,
        conv,
        choice.agent_id,
        now,
        reason=_auto_reason(reason, choice),
        only_if_free=True,
        over_capacity=choice.over_capacity,
    )
    return choice.agent_id if ok else None


async def try_assign(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    now: datetime,
    *,
    loads: list[assign.AgentLoad] | None = None,
) -> int | None:
    """Assign to the best online agent of the queue's tier; `loads`, when the caller has just
    read them (ingest, for the wait estimate), saves reading them again."""
    q = await queue_of(session, conv)
    if q is None or conv.assignee_id is not None or conv.status != "open":
        return None
    choice = assign.choose(
        _for_assign(rt, conv, q),
        loads if loads is not None else await agent_loads(session, q.tier),
        supervisor_last_resort=_last_resort(rt),
    )
    return await _take(session, conv, choice, now, "auto-assigned")


async def offer_to_next_tier(
    session: AsyncSession, rt: Runtime, conv: Conversation, q: Queue, now: datetime
) -> int | None:
    """Assign to an agent one tier up (they can read lower tiers); the queue is unchanged."""
    snap = replace(_for_assign(rt, conv, q), tier=q.tier + 1)
    choice = assign.choose(
        snap, await agent_loads(session, q.tier + 1), supervisor_last_resort=_last_resort(rt)
    )
    return await _take(session, conv, choice, now, "SLA breach: offered to the next tier")


async def assign_waiting(
    session: AsyncSession, rt: Runtime, now: datetime, limit: int = 200
) -> int:
    """Offer waiting conversations (urgent first, then oldest) to agents with free capacity."""
    agents = await agent_loads(session)
    if not agents:
        return 0
    queues = {q.id: q for q in await session.scalars(select(Queue))}
    convs = list(
        await session.scalars(
            select(Conversation)
            .where(
                Conversation.status == "open",
                Conversation.assignee_id.is_(None),
                Conversation.queue_id.is_not(None),
            )
            # Urgent first, so a backlog of routine work never hides a crisis past the limit.
            .order_by(case((Conversation.priority == "urgent", 0), else_=1), Conversation.id)
            .limit(limit)
        )
    )
    if not convs:
        return 0
    by_id = {c.id: c for c in convs}
    snaps = [_for_assign(rt, c, queues[c.queue_id]) for c in convs if c.queue_id in queues]
    plan = assign.plan(snaps, agents, now=now, supervisor_last_resort=_last_resort(rt))
    done = 0
    for conv_id, choice in plan:
        if await assign_to(
            session,
            by_id[conv_id],
            choice.agent_id,
            now,
            reason=_auto_reason("auto-assigned", choice),
            only_if_free=True,
            over_capacity=choice.over_capacity,
        ):
            done += 1
    return done


async def assign_to(
    session: AsyncSession,
    conv: Conversation,
    agent_id: int,
    now: datetime,
    *,
    reason: str,
    by_agent_id: int | None = None,
    only_if_free: bool = False,
    over_capacity: bool = False,
) -> bool:
    """Set the assignee with compare-and-set, so two concurrent claims have one winner."""
    stmt = update(Conversation).where(Conversation.id == conv.id)
    if only_if_free:
        stmt = stmt.where(Conversation.assignee_id.is_(None))
    else:
        stmt = stmt.where(
            (Conversation.assignee_id.is_(None)) | (Conversation.assignee_id != agent_id)
        )
    result = await session.execute(
        stmt.values(assignee_id=agent_id, updated_at=now).execution_options(
            synchronize_session=False
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.refresh(conv)
        return False
    previous = conv.assignee_id
    if previous is not None:
        # (Unassigning ends an assignment, so a free conversation has none open.)
        await _end_assignment(session, conv.id, now)
    # The compare-and-set above wrote these: record them as the row's state, no second UPDATE.
    set_committed_value(conv, "assignee_id", agent_id)
    set_committed_value(conv, "updated_at", now)
    batch.assigned(session, agent_id, now)
    if previous is not None:
        batch.released(session, previous)
    session.add(
        Assignment(
            conversation_id=conv.id,
            agent_id=agent_id,
            assigned_by_id=by_agent_id,
            reason=reason[:300],
            assigned_at=now,
        )
    )
    await session.execute(update(Agent).where(Agent.id == agent_id).values(last_assigned_at=now))
    await session.flush()
    await conv_event(
        session,
        "conversation.assigned",
        conv,
        agent_id=by_agent_id,
        data={
            "assignee_id": agent_id,
            "previous_assignee_id": previous,
            "reason": reason,
            "over_capacity": over_capacity,
        },
    )
    return True


async def unassign(
    session: AsyncSession, conv: Conversation, now: datetime, *, reason: str
) -> None:
    if conv.assignee_id is None:
        return
    previous = conv.assignee_id
    await _end_assignment(session, conv.id, now)
    conv.assignee_id = None
    batch.released(session, previous)
    conv.updated_at = now
    await session.flush()
    await conv_event(
        session,
        "conversation.unassigned",
        conv,
        data={"previous_assignee_id": previous, "reason": reason},
    )


async def hand_back_moved(
    session: AsyncSession, conv: Conversation, now: datetime, *, reason: str, to_queue: str
) -> None:
    """The conversation moved to a queue its assignee cannot read (routing or an SLA breach
    sent it to the second line): tell them, with the reason, and unassign them. Their later
    reads answer 410 with that reason (`repo.access.get_conversation`), not a bare 404."""
    previous = conv.assignee_id
    if previous is None:
        return
    await conv_event(
        session,
        "conversation.moved",
        conv,
        tier=1,  # addressed to a first-line agent: they must be able to see it
        data={"to_agent_id": previous, "queue": to_queue, "reason": reason},
    )
    await unassign(session, conv, now, reason=reason)


async def _end_assignment(session: AsyncSession, conv_id: int, now: datetime) -> None:
    await session.execute(
        update(Assignment)
        .where(Assignment.conversation_id == conv_id, Assignment.ended_at.is_(None))
        .values(ended_at=now)
    )


async def recent_median_handle_s(session: AsyncSession, q: Queue, now: datetime) -> float | None:
    """Median time from first assignment to resolution over the last 24 h (None: no data);
    read once per batch (ingest does not resolve conversations)."""
    snap = batch.active(session)
    if snap is not None and q.id in snap.medians:
        return snap.medians[q.id]
    if snap is None:
        return await _read_median_handle_s(session, q, now)
    # A statistic of conversations resolved before this batch (its units only add and
    # route): no need to flush the units before it, which would split the batch's writes.
    with session.no_autoflush:
        median = await _read_median_handle_s(session, q, now)
    snap.medians[q.id] = median
    return median


async def _read_median_handle_s(session: AsyncSession, q: Queue, now: datetime) -> float | None:
    rows = (
        await session.execute(
            select(Conversation.resolved_at, func.min(Assignment.assigned_at))
            .join(Assignment, Assignment.conversation_id == Conversation.id)
            .where(
                Conversation.queue_id == q.id,
                Conversation.resolved_at >= now - timedelta(hours=24),
            )
            .group_by(Conversation.id, Conversation.resolved_at)
            .order_by(Conversation.resolved_at.desc())
            .limit(200)
        )
    ).all()
    durations = [
        (resolved - assigned).total_seconds()
        for resolved, assigned in rows
        if resolved is not None and assigned is not None and resolved >= assigned
    ]
    return statistics.median(durations) if durations else None
