"""SLA timer I/O: map `sla_timers` rows to the pure `sla.Timer`, apply conversation events,
and fire due timers (the scheduler). Timers are armed in the same transaction as the state
change that arms them; nothing lives only in memory."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Conversation, Event, Queue, SlaTimer
from models.schemas import SlaRead
from router import metrics
from router.decide import breach, sla
from router.decide.sla import BusinessCalendar
from router.flows import assignment
from router.repo import batch
from router.repo.access import holds_lock, is_postgres
from router.repo.events import conv_event, write_pending
from router.repo.queues import queue_by_name, queue_of
from router.runtime import Runtime

log = logging.getLogger(__name__)


def _to_timer(row: SlaTimer) -> sla.Timer:
    return sla.Timer(
        kind=row.kind,  # type: ignore[arg-type]
        state=row.state,  # type: ignore[arg-type]
        started_at=row.started_at,
        due_at=row.due_at,
        warn_at=row.warn_at,
        remaining_s=row.remaining_s,
        target_s=row.target_s,
    )


def _write(row: SlaTimer, t: sla.Timer, now: datetime) -> None:
    row.state = t.state
    row.started_at = t.started_at
    row.due_at = t.due_at
    row.warn_at = t.warn_at
    row.remaining_s = t.remaining_s
    row.target_s = t.target_s
    row.next_fire_at = sla.next_fire_at(t)
    row.updated_at = now


def _calendar(rt: Runtime, queue: str) -> BusinessCalendar | None:
    try:
        return rt.policy.queue(queue).calendar
    except KeyError:
        return None


async def _rows(session: AsyncSession, rt: Runtime, conv_id: int) -> dict[str, SlaTimer]:
    """The conversation's timers, locked for this transaction on PostgreSQL.

    Lock order, everywhere: the conversation row, then its timers. Ingest and the agent API
    update the conversation before they get here and the scheduler claims conversations
    before timers, so the two never deadlock; and a timer due "now" is fired by whichever
    transaction holds the lock, the other one then reads it already fired (never twice).
    """
    snap = batch.active(session)
    if snap is not None and conv_id in snap.timers:
        # Read ahead under the batch's lock on the conversation (or created in this
        # transaction); units before this one changed and added the same objects.
        return snap.timers[conv_id]
    stmt = select(SlaTimer).where(SlaTimer.conversation_id == conv_id).order_by(SlaTimer.id)
    if is_postgres(session):
        if not holds_lock(session, conv_id):
            await session.execute(
                select(Conversation.id).where(Conversation.id == conv_id).with_for_update()
            )
        # Re-read under the lock: rows loaded earlier in this transaction may be stale.
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return {r.kind: r for r in await session.scalars(stmt)}


def _created(session: AsyncSession, conv_id: int) -> dict[str, SlaTimer]:
    """A conversation created in this transaction has no timers yet: nothing to read or
    lock. In a batch, the (empty) entry is the snapshot's, so its next message sees them."""
    snap = batch.active(session)
    if snap is None:
        return {}
    return snap.timers.setdefault(conv_id, {})


async def apply_event(
    session: AsyncSession, rt: Runtime, conv: Conversation, event: str, now: datetime
) -> None:
    q = await queue_of(session, conv)
    if q is None:
        return
    target = rt.policy.sla_for(q.name, conv.priority)
    cal = _calendar(rt, q.name)
    # A conversation created in this transaction has no timers yet: nothing to read or lock.
    rows = await _rows(session, rt, conv.id) if event != "created" else _created(session, conv.id)
    # Fire what is already due first, so a pause or stop never swallows a warning or breach.
    for row in rows.values():
        if row.next_fire_at is not None and row.next_fire_at <= now:
            await fire(session, rt, row, now)
    before = {k: _to_timer(r) for k, r in rows.items()}
    after = sla.transition(before, event, target, now, cal)  # type: ignore[arg-type]
    for kind, t in after.items():
        if before.get(kind) is t:
            continue
        existing = rows.get(kind)
        if existing is None:
            existing = SlaTimer(conversation_id=conv.id, kind=kind, created_at=now)
            session.add(existing)
            rows[kind] = existing  # (the batch's snapshot, when `rows` is its entry)
        _write(existing, t, now)
    if batch.active(session) is None:
        await session.flush()
    # In a batch the timer rows go out with its next flush, all units' in one statement.


async def on_customer_message(
    session: AsyncSession, rt: Runtime, conv: Conversation, now: datetime, *, how: str
) -> None:
    event = {"new": "created", "reopened": "reopened"}.get(how, "customer_message")
    await apply_event(session, rt, conv, event, now)


async def on_agent_reply(
    session: AsyncSession, rt: Runtime, conv: Conversation, now: datetime
) -> None:
    await apply_event(session, rt, conv, "agent_reply", now)


async def on_status(
    session: AsyncSession, rt: Runtime, conv: Conversation, previous: str, now: datetime
) -> None:
    status = conv.status
    if status == "pending":
        await apply_event(session, rt, conv, "pending", now)
    elif status in ("resolved", "closed"):
        await apply_event(session, rt, conv, "resolved", now)
    elif status == "open" and previous == "pending":
        await apply_event(session, rt, conv, "opened", now)
    elif status == "open":
        await apply_event(session, rt, conv, "reopened", now)


async def on_queue_change(
    session: AsyncSession, rt: Runtime, conv: Conversation, now: datetime
) -> None:
    """Queue or priority changed: active timers keep their start but take the new targets."""
    q = await queue_of(session, conv)
    if q is None:
        return
    target = rt.policy.sla_for(q.name, conv.priority)
    cal = _calendar(rt, q.name)
    for row in (await _rows(session, rt, conv.id)).values():
        t = _to_timer(row)
        if t.state not in ("running", "warned"):
            continue
        fresh = sla.arm(t.kind, target, t.started_at, cal)
        if t.state == "warned" or (fresh.warn_at is not None and fresh.warn_at <= now):
            # Never warn twice; an already-late timer is left for the scheduler to breach.
            fresh = replace(fresh, state="warned" if t.state == "warned" else "running")
            if t.state == "warned":
                fresh = replace(fresh, warn_at=None)
        _write(row, fresh, now)
    if batch.active(session) is None:
        await session.flush()


async def running(
    session: AsyncSession, rt: Runtime, conv_ids: Sequence[int]
) -> dict[int, list[SlaRead]]:
    if not conv_ids:
        return {}
    now = rt.now()
    queue_names = dict(
        (
            await session.execute(
                select(Conversation.id, Queue.name)
                .join(Queue, Queue.id == Conversation.queue_id)
                .where(Conversation.id.in_(conv_ids))
            )
        ).all()
    )
    out: dict[int, list[SlaRead]] = {}
    rows = await session.scalars(
        select(SlaTimer)
        .where(SlaTimer.conversation_id.in_(conv_ids), SlaTimer.state != "stopped")
        .order_by(SlaTimer.id)
    )
    for row in rows:
        t = _to_timer(row)
        cal = _calendar(rt, queue_names.get(row.conversation_id, ""))
        out.setdefault(row.conversation_id, []).append(
            SlaRead(
                kind=t.kind, state=t.state, due_at=t.due_at, time_left_s=sla.time_left(t, now, cal)
            )
        )
    return out


async def outcomes_24h(session: AsyncSession, q: Queue, now: datetime) -> tuple[int, int]:
    since = now - timedelta(hours=24)
    await write_pending(session)  # this transaction's own events too
    breached = (
        await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.type == "sla.breached", Event.queue == q.name, Event.created_at >= since)
        )
        or 0
    )
    met = (
        await session.scalar(
            select(func.count())
            .select_from(SlaTimer)
            .join(Conversation, Conversation.id == SlaTimer.conversation_id)
            .where(
                Conversation.queue_id == q.id,
                SlaTimer.state == "stopped",
                SlaTimer.updated_at >= since,
                SlaTimer.due_at.is_not(None),
                SlaTimer.due_at >= SlaTimer.updated_at,
            )
        )
        or 0
    )
    return int(met), int(breached)


async def fire(session: AsyncSession, rt: Runtime, row: SlaTimer, now: datetime) -> None:
    """Evaluate one timer row and record its warning/breach (once) with the policy's action."""
    t, fired = sla.evaluate(_to_timer(row), now)
    _write(row, t, now)
    if not fired:
        return
    conv = await session.get(Conversation, row.conversation_id)
    if conv is None:
        return
    q = await queue_of(session, conv)
    qname = q.name if q else "none"
    for what in fired:
        data = {"kind": row.kind, "due_at": row.due_at.isoformat() if row.due_at else None}
        if what == "warn":
            metrics.SLA_WARNINGS.labels(qname, row.kind).inc()
            await conv_event(session, "sla.warning", conv, data=data)
        else:
            metrics.SLA_BREACHES.labels(qname, row.kind).inc()
            await conv_event(session, "sla.breached", conv, data=data)
            if q is not None:
                await _breach_action(session, rt, conv, q, now, kind=row.kind)


async def _breach_action(
    session: AsyncSession, rt: Runtime, conv: Conversation, q: Queue, now: datetime, *, kind: str
) -> None:
    try:
        action = rt.policy.breach_action(q.name, conv.priority)
    except KeyError:
        return
    outcome = breach.on_breach(action, queue=q.name, priority=conv.priority)  # type: ignore[arg-type]
    changed = outcome.changed(conv.priority)
    conv.priority = outcome.priority
    if outcome.escalate_to is not None:
        target = await queue_by_name(session, outcome.escalate_to)
        conv.queue_id = target.id
        conv.routing_reasons = [
            *list(conv.routing_reasons or [])[-29:],
            f"SLA breach in {q.name}: escalated to {target.name}",
        ]
        await conv_event(
            session,
            "conversation.escalated",
            conv,
            tier=1,
            data={"from_queue": q.name, "queue": target.name, "reason": "sla breach"},
        )
        if target.tier > q.tier:
            await assignment.hand_back_moved(
                session, conv, now, reason="escalated on SLA breach", to_queue=target.name
            )
    if changed:
        conv.updated_at = now
        await on_queue_change(session, rt, conv, now)
    if outcome.alert_supervisor:
        await conv_event(session, "supervisor.alert", conv, data={"reason": "sla.breached"})
    if changed and conv.assignee_id is None:
        await assignment.try_assign(session, rt, conv, now)
    if breach.offer_to_next_tier(
        kind=kind,
        assigned=conv.assignee_id is not None,
        same_queue=conv.queue_id == q.id,
        tier=q.tier,
    ):
        await assignment.offer_to_next_tier(session, rt, conv, q, now)
