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

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import CallbackRequest, Conversation, Message
from models.messages import CallLog
from router.decide import callbacks as decide
from router.decide import sla
from router.decide.callbacks import CALLBACK_STATUSES, Outcome
from router.flows import sla as timers
from router.repo.access import locked
from router.repo.events import conv_event
from router.repo.queues import queue_of
from router.runtime import Runtime

log = logging.getLogger(__name__)


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
    stmt = locked(session, stmt)
    return await session.scalar(stmt)


async def on_call_message(
    session: AsyncSession, rt: Runtime, conv: Conversation, message: Message, now: datetime
) -> None:
    """The hook `route.after_inbound` calls for every stored call log (after routing)."""
    call = CallLog.from_meta(message.channel_meta) if message.kind == "call" else None
    if call is None:
        return
    status = call.status
    # The call itself on the live stream: what happened, never what was said.
    await conv_event(
        session,
        "call.logged",
        conv,
        data={
            "message_id": message.id,
            "call_status": status,
            "direction": call.direction,
            "duration_s": call.duration_s,
            "agent": call.agent,
            "provider": call.provider,
        },
    )
    if call.direction == "outbound":
        await _outbound(session, rt, conv, message, status, now)
        return
    if status not in CALLBACK_STATUSES:
        return
    phone = call.customer_phone
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
    queue = await queue_of(session, conv)
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
        await conv_event(
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
    await conv_event(
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
    if not decide.retry_after_no_answer(cb.attempts):
        await _close(session, conv, cb, "no_answer", now, agent_id=agent_id, via=via)
        return
    # Try again later; the next attempt has its own deadline, reported once if missed.
    cb.next_attempt_at = now + decide.retry_delay(cb.attempts)
    cb.due_at = _deadline(rt, cb.queue, cb.priority, cb.next_attempt_at)
    cb.breached_at = None
    cb.updated_at = now
    await session.flush()
    await conv_event(
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
    await conv_event(
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
        stmt = locked(session, stmt, skip_locked=True)
        for cb in list(await session.scalars(stmt)):
            conv = await session.get(Conversation, cb.conversation_id)
            if conv is None:
                continue
            if conv.status in ("resolved", "closed"):
                await _close(session, conv, cb, "cancelled", now, agent_id=None, via="resolved")
                continue
            cb.breached_at = now
            cb.updated_at = now
            await conv_event(session, "callback.breached", conv, data=_data(cb))
            breaches += 1
    return breaches
