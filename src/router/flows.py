"""Multi-step work with side effects, run inside the caller's unit of work.

Decisions come from the pure modules (`rules`, `assign`, `sla`, `wait`); this module loads
their inputs, writes their outputs and records events.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

import phonenumbers
from sqlalchemy import Select, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from models import (
    Contact,
    ContactIdentity,
    Conversation,
    Event,
    Message,
    OutboxItem,
    Queue,
)
from models.messages import IDENTITY_KIND
from router import assignment, callbacks, events, paging, rules, timers, wait
from router.db import wake_after_commit
from router.errors import Conflict
from router.runtime import Runtime

log = logging.getLogger(__name__)

# Channels that can carry a text reply; a phone call log cannot.
TEXT_CHANNELS = ("telegram", "webchat", "email", "app")
MAX_REASONS = 30


# Queues mirror the policy and are synced once at start-up (`bootstrap.sync_queues`), so
# their rows are kept per database for the life of the process: a message then costs no
# queue look-up. Detached copies; callers only read them.
_QUEUES: WeakKeyDictionary[Engine, dict[int | str, Queue]] = WeakKeyDictionary()


def _queue_cache(session: AsyncSession) -> dict[int | str, Queue]:
    return _QUEUES.setdefault(session.get_bind().engine, {})


def forget_queues(engine: AsyncEngine) -> None:
    """Drop the cached queue rows (after `sync_queues` changed them)."""
    _QUEUES.pop(engine.sync_engine, None)


async def _load_queue(session: AsyncSession, key: int | str) -> Queue | None:
    cache = _queue_cache(session)
    q = cache.get(key)
    if q is None:
        where = Queue.id == key if isinstance(key, int) else Queue.name == key
        row = await session.scalar(select(Queue).where(where))
        if row is None:
            return None
        # A copy in no session: shared by every unit of work of this process.
        q = Queue(
            id=row.id, name=row.name, title=row.title, tier=row.tier, created_at=row.created_at
        )
        cache[q.id] = cache[q.name] = q
    return q


async def queue_of(session: AsyncSession, conv: Conversation) -> Queue | None:
    if conv.queue_id is None:
        return None
    return await _load_queue(session, conv.queue_id)


async def queue_by_name(session: AsyncSession, name: str) -> Queue:
    q = await _load_queue(session, name)
    if q is None:
        raise Conflict(f"queue {name!r} does not exist")
    return q


async def conv_event(
    session: AsyncSession,
    type_: str,
    conv: Conversation,
    *,
    agent_id: int | None = None,
    data: dict[str, Any] | None = None,
    tier: int | None = None,
) -> None:
    """Record an event about a conversation, visible to whoever may read its queue.

    Without an explicit `tier` (events addressed to the first line pass 1) the event follows
    the conversation: this unit of work's earlier events about it and its contact are raised
    to its current tier, so `conversation.created` and `contact.created`, recorded before
    routing, commit with the tier routing chose."""
    q = await queue_of(session, conv)
    current = q.tier if q else 1
    ev = await events.record(
        session,
        type_,
        conversation=conv,
        queue=q.name if q else None,
        tier=tier if tier is not None else current,
        agent_id=agent_id,
        data=data,
    )
    if tier is None:
        events.follow(session, ev)
    events.settle(session, conv, current)


async def after_inbound(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    contact: Contact,
    message: Message,
    *,
    how: str,
    was_pending: bool,
    now: datetime,
) -> None:
    new = how == "new"
    if new:
        await conv_event(session, "conversation.created", conv, data={"channel": conv.channel})
    if message.direction == "out" and not new:
        # An outbound call an agent (or the PBX) logged: part of the timeline and it may close
        # a callback request, but it is not the customer asking for anything.
        await session.flush()  # the message id, for the event
        await conv_event(session, "message.received", conv, data=_received(message))
        await callbacks.on_call_message(session, rt, conv, message, now)
        return
    decision = await route(session, rt, conv, contact, [message], now)  # flushes the message
    # After routing, so the event carries the queue (and tier) the message now belongs to.
    await conv_event(session, "message.received", conv, data=_received(message))
    await timers.on_customer_message(session, rt, conv, now, how=how)
    await callbacks.on_call_message(session, rt, conv, message, now)
    urgent_medical = decision.urgent_medical or "urgent_medical" in (conv.tags or ())
    if urgent_medical:
        # "Call the emergency number now", never a wait estimate (once per conversation).
        await send_urgent_medical_ack(session, rt, conv, contact, now)
    if decision.crisis:
        await send_crisis_ack(session, rt, conv, now)
    elif new and not urgent_medical:
        # A new conversation's only inbound message is this one: reply on its channel.
        channel = message.channel if message.channel in TEXT_CHANNELS else None
        await send_wait_ack(session, rt, conv, now, channel=channel)
    if conv.assignee_id is None:
        await assignment.try_assign(session, rt, conv, now)
    # After assignment, so "no clinician online" is judged on the same loads.
    await paging.on_urgent(session, rt, conv, now)


def _received(message: Message) -> dict[str, Any]:
    return {"message_id": message.id, "channel": message.channel, "kind": message.kind}


async def after_resolved(session: AsyncSession, rt: Runtime, conv: Conversation) -> None:
    """Channel follow-ups to a resolution: the customer may rate the conversation where the
    channel can ask (Telegram's inline buttons)."""
    if "telegram" in rt.channels:
        from channels.telegram.handling import ask_rating  # channel code, loaded on demand

        await ask_rating(session, rt, conv)


async def route(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    contact: Contact,
    new_messages: list[Message],
    now: datetime,
) -> rules.RoutingDecision:
    """Apply the policy to the new inbound messages; only ever moves a conversation up."""
    current = await queue_of(session, conv)
    snapshot = rules.ConversationSnapshot(
        channel=conv.channel,
        queue=current.name if current else None,
        priority=conv.priority if current else None,
        tags=tuple(conv.tags or ()),
        language=conv.language,
        status=conv.status,
    )
    msgs = [
        rules.MessageSnapshot(
            text=m.text,
            direction=m.direction,
            channel=m.channel,
            kind=m.kind,
            channel_meta=m.channel_meta or {},
        )
        for m in new_messages
    ]
    decision = rules.route(
        snapshot, msgs, rules.ContactSnapshot(attributes=contact.attributes or {}), now, rt.policy
    )
    if decision.language and not conv.language:
        conv.language = decision.language
    for m in new_messages:
        if m.language is None:
            m.language = decision.language
    if current is None or decision.changed:
        target = await queue_by_name(session, decision.queue)
        moved_tier = current is not None and target.tier > current.tier
        conv.queue_id = target.id
        conv.priority = decision.priority
        conv.tags = list(decision.tags)
        conv.routing_reasons = (list(conv.routing_reasons or []) + list(decision.reasons))[
            -MAX_REASONS:
        ]
        conv.updated_at = now
        await conv_event(
            session,
            "conversation.routed",
            conv,
            data={
                "queue": target.name,
                "priority": decision.priority,
                "reasons": list(decision.reasons),
                "from_queue": current.name if current else None,
            },
        )
        if current is not None:
            await timers.on_queue_change(session, rt, conv, now)
        if moved_tier and conv.assignee_id is not None:
            # A first-line agent cannot read a second-line conversation: tell them why and
            # hand it back.
            await assignment.hand_back_moved(
                session,
                conv,
                now,
                reason=f"escalated by routing: {_why_moved(decision)}",
                to_queue=target.name,
            )
    elif set(decision.tags) != set(conv.tags or ()):
        conv.tags = list(decision.tags)
    if decision.crisis and not await _crisis_flagged(session, conv):
        await conv_event(
            session,
            "crisis.detected",
            conv,
            data={"alert": "supervisor", "reasons": list(decision.reasons)},
        )
    await session.flush()
    return decision


def _why_moved(decision: rules.RoutingDecision) -> str:
    # A category, never the text that matched: the reason is shown on the agent's screen
    # after they lost access to the conversation.
    if decision.crisis:
        return "crisis"
    if decision.urgent_medical:
        return "urgent medical"
    clinical = [t for t in decision.tags if t in ("clinical", "acute")]
    return " ".join(clinical) or "second-line topic"


async def _crisis_flagged(session: AsyncSession, conv: Conversation) -> bool:
    """The supervisor alert fires once per conversation, however many crisis messages follow."""
    n = await session.scalar(
        select(func.count())
        .select_from(Event)
        .where(Event.conversation_id == conv.id, Event.type == "crisis.detected")
    )
    return bool(n)


# channel_meta keys: who wrote an inbound message (its identity value), and, on a copy of a
# reply sent on another channel (web chat's mail fallback), the id of the original.
SENDER = "sender"
COPY_OF = "copy_of"


def _customer_outbound(conv: Conversation) -> Select[Any]:
    return (
        select(Message)
        .where(
            Message.conversation_id == conv.id,
            Message.direction == "out",
            Message.channel.in_(TEXT_CHANNELS),
            Message.channel_meta[COPY_OF].as_string().is_(None),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )


async def reply_channel(session: AsyncSession, conv: Conversation) -> str:
    """The channel the conversation has been replying on; before the first reply, the one
    the customer wrote from. Replies never move on their own: a message from another of the
    contact's identities (newly linked, perhaps not the same person) is stored, but moving
    the replies there takes an agent's reply with `identity_id`."""
    last_out: Message | None = await session.scalar(_customer_outbound(conv))
    if last_out is not None:
        return last_out.channel
    ch = await session.scalar(
        select(Message.channel)
        .where(
            Message.conversation_id == conv.id,
            Message.direction == "in",
            Message.channel.in_(TEXT_CHANNELS),
        )
        .order_by(Message.id)
        .limit(1)
    )
    if ch is None and conv.channel in TEXT_CHANNELS:
        ch = conv.channel
    if ch is None:
        raise Conflict("this conversation has no text channel to reply on (calls only)")
    return ch


async def recipient_for(session: AsyncSession, conv: Conversation, channel: str) -> str:
    """The identity the conversation has been using on `channel`: where its last reply there
    went, else who first wrote from there; only for a channel the conversation never used
    (an agent's explicit choice), the contact's newest identity of that kind."""
    kind = IDENTITY_KIND[channel]
    value: str | None = None
    last_out: Message | None = await session.scalar(
        _customer_outbound(conv).where(Message.channel == channel)
    )
    if last_out is not None and (last_out.channel_meta or {}).get("recipient"):
        value = str(last_out.channel_meta["recipient"])
    else:
        first_in = await session.scalar(
            select(Message)
            .where(
                Message.conversation_id == conv.id,
                Message.direction == "in",
                Message.channel == channel,
                Message.channel_meta[SENDER].as_string().is_not(None),
            )
            .order_by(Message.id)
            .limit(1)
        )
        if first_in is not None:
            value = str(first_in.channel_meta[SENDER])
    where = [ContactIdentity.contact_id == conv.contact_id, ContactIdentity.kind == kind]
    if value is not None:
        where.append(ContactIdentity.value == value)
    ident = await session.scalar(
        select(ContactIdentity).where(*where).order_by(ContactIdentity.id.desc()).limit(1)
    )
    if ident is None:
        raise Conflict(f"the contact has no {channel} identity to reply to")
    if ident.unreachable:
        raise Conflict(f"the contact is unreachable on {channel}")
    return ident.value


async def enqueue_outbound(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    text: str,
    *,
    kind: str = "text",
    author_agent_id: int | None = None,
    channel: str | None = None,
    recipient: str | None = None,
    now: datetime,
) -> Message:
    """Write an outbound message and its outbox item in one transaction. `recipient`, when
    the caller has already chosen one (web chat's mail fallback), skips `recipient_for`."""
    ch = channel or await reply_channel(session, conv)
    recipient = recipient or await recipient_for(session, conv, ch)
    msg = Message(
        conversation_id=conv.id,
        direction="out",
        channel=ch,
        kind=kind,
        text=text,
        author_agent_id=author_agent_id,
        created_at=now,
        delivery_status="queued",
        channel_meta={"recipient": recipient},
    )
    session.add(msg)
    await session.flush()
    session.add(
        OutboxItem(
            message_id=msg.id,
            conversation_id=conv.id,
            channel=ch,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    conv.last_outbound_at = now
    conv.updated_at = now
    wake_after_commit(session, "outbox")
    await session.flush()
    await conv_event(
        session,
        "message.queued",
        conv,
        agent_id=author_agent_id,
        data={"message_id": msg.id, "channel": ch, "kind": kind},
    )
    return msg


async def _auto_sent(session: AsyncSession, conv: Conversation, kind: str) -> bool:
    n = await session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.conversation_id == conv.id, Message.kind == kind)
    )
    return bool(n)


async def send_crisis_ack(
    session: AsyncSession, rt: Runtime, conv: Conversation, now: datetime
) -> None:
    if await _auto_sent(session, conv, "crisis_ack"):
        return
    try:
        await enqueue_outbound(
            session, rt, conv, rt.policy.crisis_ack_text(conv.language), kind="crisis_ack", now=now
        )
    except Conflict:
        log.warning("crisis acknowledgement not sendable", extra={"conversation_id": conv.id})


async def send_urgent_medical_ack(
    session: AsyncSession, rt: Runtime, conv: Conversation, contact: Contact, now: datetime
) -> None:
    if await _auto_sent(session, conv, "emergency_ack"):
        return
    number = rt.policy.emergency_number(await _region_of(session, contact), conv.language)
    try:
        await enqueue_outbound(
            session,
            rt,
            conv,
            rt.policy.urgent_medical_ack_text(conv.language, number),
            kind="emergency_ack",  # the urgent_medical_ack text (kind fits its 16-char column)
            now=now,
        )
    except Conflict:
        log.warning(
            "urgent medical acknowledgement not sendable", extra={"conversation_id": conv.id}
        )
    conv.ack_sent = True  # no wait estimate after this, ever


async def _region_of(session: AsyncSession, contact: Contact) -> str | None:
    """The person's region (ISO 3166 alpha-2): a `country` attribute, else their phone's."""
    attrs = contact.attributes or {}
    for key in ("country", "region"):
        value = attrs.get(key)
        if isinstance(value, str) and len(value.strip()) == 2:
            return value.strip().upper()
    phone = await session.scalar(
        select(ContactIdentity.value)
        .where(ContactIdentity.contact_id == contact.id, ContactIdentity.kind == "phone")
        .order_by(ContactIdentity.id.desc())
        .limit(1)
    )
    if phone is None:
        return None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


async def send_wait_ack(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    now: datetime,
    *,
    channel: str | None = None,
) -> None:
    """Tell a new customer how long they will likely wait (once per conversation)."""
    if conv.ack_sent:
        return
    q = await queue_of(session, conv)
    if q is None:
        return
    est = await estimate_wait(session, rt, q, conv.priority, now, exclude_id=conv.id)
    conv.ack_sent = True  # set first: it goes out in the same UPDATE as the outbound's changes
    try:
        await enqueue_outbound(
            session,
            rt,
            conv,
            rt.policy.ack_text(conv.language, wait.wait_minutes(est), est.surge),
            kind="ack",
            channel=channel,
            now=now,
        )
    except Conflict:
        conv.ack_sent = False  # a call-only contact: the callback request is the acknowledgement


async def estimate_wait(
    session: AsyncSession,
    rt: Runtime,
    q: Queue,
    priority: str,
    now: datetime,
    *,
    exclude_id: int | None = None,
) -> wait.WaitEstimate:
    depth_ahead = int(
        await session.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(
                Conversation.queue_id == q.id,
                Conversation.status == "open",
                Conversation.assignee_id.is_(None),
                Conversation.id != (exclude_id or 0),
            )
        )
        or 0
    )
    # Who can take it now: online agents of the tier, their capacity left. Supervisors only
    # count when the policy lets them take work.
    last_resort = rt.policy.escalation.supervisor_last_resort
    workers = [
        a for a in await assignment.agent_loads(session, q.tier) if last_resort or not a.supervisor
    ]
    online = len(workers)
    free = sum(max(0, a.capacity - a.open_count) for a in workers)
    # Without online agents the estimate is the fallback whatever the history says.
    median = await assignment.recent_median_handle_s(session, q, now) if online else None
    target = rt.policy.sla_for(q.name, priority)
    return wait.expected_wait(
        depth_ahead=depth_ahead,
        online_agents=online,
        median_handle_s=median,
        fallback_s=float(target.first_response_s),
        free_slots=free,
    )
