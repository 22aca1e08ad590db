"""SLA timer I/O: map `sla_timers` rows to the pure `sla.Timer`, apply conversation events,
and fire due timers (the scheduler). Timers are armed in the same transaction as the state
change that arms them; nothing lives only in memory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Conversation, Event, Queue, SlaTimer
from models.schemas import SlaRead
from router import assignment, flows, metrics, sla
from router.db import log_job_failure
from router.runtime import Runtime
from router.sla import BusinessCalendar

log = logging.getLogger(__name__)
PRIORITY_ORDER = ("low", "normal", "high", "urgent")


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
    stmt = select(SlaTimer).where(SlaTimer.conversation_id == conv_id).order_by(SlaTimer.id)
    if rt.db.dialect == "postgresql":
        await session.execute(
            select(Conversation.id).where(Conversation.id == conv_id).with_for_update()
        )
        # Re-read under the lock: rows loaded earlier in this transaction may be stale.
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return {r.kind: r for r in await session.scalars(stmt)}


async def apply_event(
    session: AsyncSession, rt: Runtime, conv: Conversation, event: str, now: datetime
) -> None:
    q = await flows.queue_of(session, conv)
    if q is None:
        return
    target = rt.policy.sla_for(q.name, conv.priority)
    cal = _calendar(rt, q.name)
    # A conversation created in this transaction has no timers yet: nothing to read or lock.
    rows = {} if event == "created" else await _rows(session, rt, conv.id)
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
        _write(existing, t, now)
    await session.flush()


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
    q = await flows.queue_of(session, conv)
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


class SlaScheduler:
    """Fires due timers. Each batch is one transaction. On PostgreSQL it claims the
    conversations of due timers with FOR UPDATE SKIP LOCKED, then locks their timers: the
    lock order of every writer of timers (see `_rows`). So with N instances and concurrent
    requests every warning/breach fires exactly once, and nobody deadlocks; a conversation
    that is busy is skipped (whoever holds it fires its due timers, or the next poll does).
    Overdue timers (after a restart) are simply due: they fire on the first poll."""

    def __init__(self, rt: Runtime, *, batch: int = 200) -> None:
        self.rt = rt
        self.batch = batch

    async def run_once(self) -> int:
        """Fire the due timers of one batch; returns how many timer rows were evaluated."""
        rt = self.rt
        now = rt.now()
        due = (
            select(SlaTimer.conversation_id)
            .where(SlaTimer.next_fire_at <= now)
            .order_by(SlaTimer.next_fire_at)
            .limit(self.batch)
        )
        async with rt.db.session() as session:
            if rt.db.dialect == "postgresql":
                due = due.join(Conversation, Conversation.id == SlaTimer.conversation_id)
                due = due.with_for_update(of=Conversation, skip_locked=True)
            conv_ids = set(await session.scalars(due))
            if not conv_ids:
                return 0
            # A fresh statement (a fresh snapshot): a timer fired by whoever held its
            # conversation just before we claimed it is read as fired, not fired again.
            stmt = (
                select(SlaTimer)
                .where(SlaTimer.conversation_id.in_(conv_ids), SlaTimer.next_fire_at <= now)
                .order_by(SlaTimer.next_fire_at)
            )
            if rt.db.dialect == "postgresql":
                stmt = stmt.with_for_update()
            rows = list(await session.scalars(stmt))
            for row in rows:
                await fire(session, rt, row, now)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                n = await self.run_once()
            except Exception as exc:
                log_job_failure(log, "sla scheduler batch", exc)
                n = 0
            if n < self.batch:
                await self.rt.sla_wake.wait(await self._idle_for())

    async def _idle_for(self) -> float:
        """Sleep until the next timer is due, at most one poll interval: other instances or
        new conversations may arm earlier timers. (Commits do not wake the scheduler: a new
        timer is due minutes ahead, and waking on every commit cost two transactions each.)"""
        poll = self.rt.settings.worker_poll_s
        try:
            async with self.rt.db.session() as session:
                nxt = await session.scalar(select(func.min(SlaTimer.next_fire_at)))
        except Exception:
            return poll
        if nxt is None:
            return poll
        # A floor, so rows locked by another instance never turn this into a busy loop.
        return float(max(0.02, min(poll, (nxt - self.rt.now()).total_seconds())))


async def fire(session: AsyncSession, rt: Runtime, row: SlaTimer, now: datetime) -> None:
    """Evaluate one timer row and record its warning/breach (once) with the policy's action."""
    t, fired = sla.evaluate(_to_timer(row), now)
    _write(row, t, now)
    if not fired:
        return
    conv = await session.get(Conversation, row.conversation_id)
    if conv is None:
        return
    q = await flows.queue_of(session, conv)
    qname = q.name if q else "none"
    for what in fired:
        data = {"kind": row.kind, "due_at": row.due_at.isoformat() if row.due_at else None}
        if what == "warn":
            metrics.SLA_WARNINGS.labels(qname, row.kind).inc()
            await flows.conv_event(session, "sla.warning", conv, data=data)
        else:
            metrics.SLA_BREACHES.labels(qname, row.kind).inc()
            await flows.conv_event(session, "sla.breached", conv, data=data)
            if q is not None:
                await _breach_action(session, rt, conv, q, now, kind=row.kind)


async def _breach_action(
    session: AsyncSession, rt: Runtime, conv: Conversation, q: Queue, now: datetime, *, kind: str
) -> None:
    try:
        action = rt.policy.breach_action(q.name, conv.priority)
    except KeyError:
        return
    changed = False
    if action.raise_priority and conv.priority != "urgent":
        conv.priority = PRIORITY_ORDER[PRIORITY_ORDER.index(conv.priority) + 1]
        changed = True
    if action.escalate_to and action.escalate_to != q.name:
        target = await flows.queue_by_name(session, action.escalate_to)
        conv.queue_id = target.id
        conv.routing_reasons = [
            *list(conv.routing_reasons or [])[-29:],
            f"SLA breach in {q.name}: escalated to {target.name}",
        ]
        changed = True
        await flows.conv_event(
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
    if action.alert_supervisor:
        await flows.conv_event(session, "supervisor.alert", conv, data={"reason": "sla.breached"})
    if changed and conv.assignee_id is None:
        await assignment.try_assign(session, rt, conv, now)
    if (
        kind == "first_response"
        and conv.assignee_id is None
        and conv.queue_id == q.id
        and q.tier == 1
    ):
        # Nobody on the front desk took it in time: any online clinician may answer instead.
        await assignment.offer_to_next_tier(session, rt, conv, q, now)
