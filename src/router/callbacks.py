"""Callback requests: a missed call, busy line, failed call or voicemail is a promise to ring
the customer back, with its own SLA. Runs inside the caller's unit of work.

Lifecycle (one open request per conversation at most):
- an inbound missed/busy/failed/voicemail call opens one, or bumps the open one
  (`missed_count` + 1, never a later deadline);
- an outbound call that reaches the customer closes it as done; an outbound call that does
  not counts as an attempt;
- agents record an outcome: done, no_answer (try again later, with backoff; after
  `MAX_ATTEMPTS` the request is closed as no_answer) or wrong_number;
- SLA: `due_at` = the call's time + the first-response target of the conversation's queue x
  priority (the callback *is* the first response), in the queue's business time. A small
  scheduler (`fire_due_callbacks`) records `callback.breached` once per armed deadline:
  `breached_at` is set in the same transaction as the event, and the poll skips rows that
  have it. A new deadline (after a no-answer attempt) clears it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import CallbackRequest, Conversation, Message
from router import flows, sla, timers
from router.db import log_job_failure
from router.runtime import Runtime

log = logging.getLogger(__name__)

# Statuses of an inbound call that leave the customer waiting for us to ring back.
CALLBACK_STATUSES = frozenset({"missed", "busy", "failed", "voicemail"})
Outcome = Literal["done", "no_answer", "wrong_number"]
MAX_ATTEMPTS = 3
# Wait before the next attempt after the n-th unanswered one (then the last value).
RETRY_BACKOFF = (timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))


@dataclass(frozen=True)
class CallbackSla:
    """The callback SLA as agents see it."""

    state: Literal["running", "breached", "met", "stopped"]
    due_at: datetime | None
    time_left_s: float | None


def retry_delay(attempts: int) -> timedelta:
    """Pure: how long to wait after `attempts` unanswered attempts (1-based)."""
    return RETRY_BACKOFF[min(max(attempts, 1), len(RETRY_BACKOFF)) - 1]


def sla_view(cb: CallbackRequest, now: datetime) -> CallbackSla:
    """Pure: the SLA state of one request at `now` (24/7 time left; the deadline itself was
    computed in business time)."""
    if cb.status != "open":
        met = cb.closed_at is not None and cb.due_at is not None and cb.closed_at <= cb.due_at
        return CallbackSla("met" if met else "stopped", cb.due_at, None)
    if cb.due_at is None:
        return CallbackSla("running", None, None)
    left = (cb.due_at - now).total_seconds()
    state: Literal["running", "breached"] = (
        "breached" if cb.breached_at is not None or left <= 0 else "running"
    )
    return CallbackSla(state, cb.due_at, left)


def _deadline(rt: Runtime, queue: str | None, priority: str, start: datetime) -> datetime:
    name = queue or rt.policy.default_queue
    target = rt.policy.sla_for(name, priority)
    try:
        calendar = rt.policy.queue(name).calendar
    except KeyError:
        calendar = None
    return sla.add_business_time(start, target.first_response_s, calendar)


async def open_request(session: AsyncSession, conv: Conversation) -> CallbackRequest | None:
    stmt = select(CallbackRequest).where(
        CallbackRequest.conversation_id == conv.id, CallbackRequest.status == "open"
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def on_call_message(
    session: AsyncSession, rt: Runtime, conv: Conversation, message: Message, now: datetime
) -> None:
    """The hook `flows.after_inbound` calls for every stored call log (after routing)."""
    if message.kind != "call":
        return
    meta = message.channel_meta or {}
    status = str(meta.get("call_status"))
    # The call itself on the live stream: what happened, never what was said.
    await flows.conv_event(
        session,
        "call.logged",
        conv,
        data={
            "message_id": message.id,
            "call_status": status,
            "direction": meta.get("direction"),
            "duration_s": meta.get("duration_s"),
            "agent": meta.get("agent"),
            "provider": meta.get("provider"),
        },
    )
    if meta.get("direction") == "outbound":
        await _outbound(session, rt, conv, message, status, now)
        return
    if status not in CALLBACK_STATUSES:
        return
    phone = meta.get("customer_phone")
    if not phone:
        # A withheld number cannot be rung back: the call stays in the timeline, no request.
        log.info("missed call without a number", extra={"conversation_id": conv.id})
        return
    await _open_or_bump(session, rt, conv, message, str(phone), status, now)


async def _open_or_bump(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    message: Message,
    phone: str,
    status: str,
    now: datetime,
) -> None:
    queue = await flows.queue_of(session, conv)
    queue_name = queue.name if queue else None
    # The customer has been waiting since the call, not since a late upload of it.
    called_at = min(message.created_at, now)
    due = _deadline(rt, queue_name, conv.priority, called_at)
    cb = await open_request(session, conv)
    if cb is None:
        cb = CallbackRequest(
            conversation_id=conv.id,
            contact_id=conv.contact_id,
            phone=phone,
            queue=queue_name,
            priority=conv.priority,
            status="open",
            missed_count=1,
            attempts=0,
            first_call_at=called_at,
            last_call_at=called_at,
            last_call_status=status,
            last_message_id=message.id,
            next_attempt_at=called_at,
            due_at=due,
            created_at=now,
            updated_at=now,
        )
        session.add(cb)
        await session.flush()
        await flows.conv_event(
            session,
            "callback.requested",
            conv,
            data=_data(cb, message_id=message.id, call_status=status),
        )
        return
    # Another missed call: one request with a count. Routing may have raised the priority
    # (a crisis voicemail), so the deadline may come closer; it never moves later.
    cb.missed_count += 1
    cb.phone = phone
    cb.queue = queue_name
    cb.priority = conv.priority
    cb.last_call_at = max(cb.last_call_at, called_at)
    cb.last_call_status = status
    cb.last_message_id = message.id
    cb.next_attempt_at = min(cb.next_attempt_at or called_at, called_at)
    if cb.due_at is None or due < cb.due_at:
        cb.due_at = due
    cb.updated_at = now
    await session.flush()
    await flows.conv_event(
        session,
        "callback.bumped",
        conv,
        data=_data(cb, message_id=message.id, call_status=status),
    )


async def _outbound(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    message: Message,
    status: str,
    now: datetime,
) -> None:
    """An outbound call: reaching the customer closes the request; not reaching them is an
    attempt. Either way an agent responded, so the conversation's response clock stops."""
    cb = await open_request(session, conv)
    if status == "answered":
        await timers.on_agent_reply(session, rt, conv, now)
        if cb is not None:
            await _close(session, conv, cb, "done", now, agent_id=None, via="call")
        return
    if cb is not None:
        await timers.on_agent_reply(session, rt, conv, now)
        await _attempt_failed(session, rt, conv, cb, now, agent_id=None, via="call")


async def record_outcome(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    cb: CallbackRequest,
    outcome: Outcome,
    *,
    agent_id: int | None,
    note: str | None,
    now: datetime,
) -> CallbackRequest:
    """An agent's result of ringing back. The caller checked reach and that `cb` is open."""
    if note is not None:
        cb.note = note
    if outcome == "wrong_number":
        await _close(session, conv, cb, "wrong_number", now, agent_id=agent_id, via="agent")
        return cb
    # Ringing back is the agent's response, answered or not.
    await timers.on_agent_reply(session, rt, conv, now)
    if outcome == "done":
        await _close(session, conv, cb, "done", now, agent_id=agent_id, via="agent")
    else:
        await _attempt_failed(session, rt, conv, cb, now, agent_id=agent_id, via="agent")
    return cb


async def _attempt_failed(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    cb: CallbackRequest,
    now: datetime,
    *,
    agent_id: int | None,
    via: str,
) -> None:
    cb.attempts += 1
    cb.outcome = "no_answer"
    if cb.attempts >= MAX_ATTEMPTS:
        await _close(session, conv, cb, "no_answer", now, agent_id=agent_id, via=via)
        return
    # Try again later; the next attempt has its own deadline, reported once if missed.
    cb.next_attempt_at = now + retry_delay(cb.attempts)
    cb.due_at = _deadline(rt, cb.queue, cb.priority, cb.next_attempt_at)
    cb.breached_at = None
    cb.updated_at = now
    await session.flush()
    await flows.conv_event(
        session, "callback.attempted", conv, agent_id=agent_id, data={**_data(cb), "via": via}
    )


async def _close(
    session: AsyncSession,
    conv: Conversation,
    cb: CallbackRequest,
    status: str,
    now: datetime,
    *,
    agent_id: int | None,
    via: str,
) -> None:
    cb.status = status
    cb.outcome = status
    cb.closed_at = now
    cb.closed_by_agent_id = agent_id
    cb.next_attempt_at = None
    cb.updated_at = now
    await session.flush()
    await flows.conv_event(
        session, "callback.closed", conv, agent_id=agent_id, data={**_data(cb), "via": via}
    )


def _data(cb: CallbackRequest, **extra: object) -> dict[str, object]:
    """Event payload: ids and counters only (never the number, never a transcript)."""
    return {
        "callback_id": cb.id,
        "status": cb.status,
        "missed_count": cb.missed_count,
        "attempts": cb.attempts,
        "due_at": cb.due_at.isoformat() if cb.due_at else None,
        **extra,
    }


async def fire_due_callbacks(rt: Runtime, *, batch: int = 200) -> int:
    """Record `callback.breached` for every open request past its deadline, once each; a
    request whose conversation was resolved or closed meanwhile is cancelled instead.
    Returns the number of breaches recorded. Safe with many instances: rows are claimed with
    FOR UPDATE SKIP LOCKED on PostgreSQL, and `breached_at` is written with the event.
    """
    now = rt.now()
    breaches = 0
    async with rt.db.session() as session:
        stmt = (
            select(CallbackRequest)
            .where(
                CallbackRequest.status == "open",
                CallbackRequest.due_at <= now,
                CallbackRequest.breached_at.is_(None),
            )
            .order_by(CallbackRequest.due_at)
            .limit(batch)
        )
        if rt.db.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        for cb in list(await session.scalars(stmt)):
            conv = await session.get(Conversation, cb.conversation_id)
            if conv is None:
                continue
            if conv.status in ("resolved", "closed"):
                await _close(session, conv, cb, "cancelled", now, agent_id=None, via="resolved")
                continue
            cb.breached_at = now
            cb.updated_at = now
            await flows.conv_event(session, "callback.breached", conv, data=_data(cb))
            breaches += 1
    return breaches


async def run_scheduler(rt: Runtime, stop: asyncio.Event) -> None:
    """The worker loop for the app's lifespan: fire due callbacks, then wait for the poll
    interval (`sla_wake` only cuts it short at shutdown). A breach that falls due between
    polls is recorded at most `worker_poll_s` late, and still only once."""
    while not stop.is_set():
        try:
            await fire_due_callbacks(rt)
        except Exception as exc:
            log_job_failure(log, "callback scheduler batch", exc)
        await rt.sla_wake.wait(rt.settings.worker_poll_s)
