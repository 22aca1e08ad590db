"""Replies and automatic messages: which channel and identity a reply goes to, the outbound
message with its outbox item, and the acknowledgements (wait estimate, crisis, emergency)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy import Select, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Contact, ContactIdentity, Conversation, Message, OutboxItem, Queue
from models.messages import IDENTITY_KIND
from models.vocab import COPY_OF, SENDER, TEXT_CHANNELS
from router.decide import assign, wait
from router.errors import Conflict
from router.flows import assignment
from router.repo import batch
from router.repo.events import conv_event
from router.repo.queues import queue_of
from router.runtime import Runtime
from router.wake import wake_after_commit

log = logging.getLogger(__name__)


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
    reserved = batch.take_id(session, "messages")
    if reserved is not None:
        msg.id = reserved  # a batch's id (PostgreSQL): the INSERT waits for the batch's flush
    session.add(msg)
    # Set before the flush: they go out in the same UPDATE as the caller's pending changes.
    conv.last_outbound_at = now
    conv.updated_at = now
    if msg.id is None:
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
    wake_after_commit(session, "outbox")
    # No flush: the outbox row goes out with the next flush or the commit, with the events.
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
    recipient: str | None = None,
    loads: list[assign.AgentLoad] | None = None,
) -> None:
    """Tell a new customer how long they will likely wait (once per conversation).
    `recipient` and `loads`, when the caller already has them, save their look-ups."""
    if conv.ack_sent:
        return
    q = await queue_of(session, conv)
    if q is None:
        return
    est = await estimate_wait(session, rt, q, conv.priority, now, exclude_id=conv.id, loads=loads)
    conv.ack_sent = True  # set first: it goes out in the same UPDATE as the outbound's changes
    try:
        await enqueue_outbound(
            session,
            rt,
            conv,
            rt.policy.ack_text(conv.language, wait.wait_minutes(est), est.surge),
            kind="ack",
            channel=channel,
            recipient=recipient,
            now=now,
        )
    except Conflict:
        conv.ack_sent = False  # a call-only contact: the callback request is the acknowledgement


def _waiting(q: Queue, queue_id: Any, status: Any, assignee: Any) -> int:
    return int(queue_id == q.id and status == "open" and assignee is None)


async def _depth(session: AsyncSession, q: Queue, exclude_id: int | None) -> int:
    """Open, unassigned conversations in `q` (other than `exclude_id`)."""
    waiting = (
        select(func.count())
        .select_from(Conversation)
        .where(
            Conversation.queue_id == q.id,
            Conversation.status == "open",
            Conversation.assignee_id.is_(None),
        )
    )
    snap = batch.active(session)
    if snap is None:
        return int(await session.scalar(waiting.where(Conversation.id != (exclude_id or 0))) or 0)
    # In a batch: the rows as flushed are counted once (until the next flush) and without
    # flushing the units before this one (which would write them one by one instead of with
    # the batch); then corrected for what the units changed in memory, the truth.
    n = snap.depth.get(q.id)
    if n is None:
        with session.no_autoflush:
            n = snap.depth[q.id] = int(await session.scalar(waiting) or 0)
    for obj in session.new:
        if isinstance(obj, Conversation) and (obj.id is None or obj.id != exclude_id):
            n += _waiting(q, obj.queue_id, obj.status, obj.assignee_id)
    for obj in session.identity_map.values():
        if not isinstance(obj, Conversation):
            continue
        state = inspect(obj)
        if obj.id != exclude_id and not state.unloaded.isdisjoint(_KEYS):
            continue  # not loaded, so not changed in memory: the count saw it as it is
        now_ = (obj.queue_id, obj.status, obj.assignee_id)
        attrs = state.attrs
        was = tuple(_flushed(attrs[k].history, v) for k, v in zip(_KEYS, now_, strict=True))
        if obj.id == exclude_id:
            n -= _waiting(q, *was)  # counted as flushed, but it is the one asking
        elif was != now_:
            n += _waiting(q, *now_) - _waiting(q, *was)
    return max(0, n)


_KEYS = ("queue_id", "status", "assignee_id")


def _flushed(history: Any, current: Any) -> Any:
    """An attribute's value as last flushed (what a query sees)."""
    return history.deleted[0] if history.deleted else current


async def estimate_wait(
    session: AsyncSession,
    rt: Runtime,
    q: Queue,
    priority: str,
    now: datetime,
    *,
    exclude_id: int | None = None,
    loads: list[assign.AgentLoad] | None = None,
) -> wait.WaitEstimate:
    depth_ahead = await _depth(session, q, exclude_id)
    # Who can take it now: online agents of the tier, their capacity left. Supervisors only
    # count when the policy lets them take work.
    last_resort = rt.policy.escalation.supervisor_last_resort
    workers = [
        a
        for a in (loads if loads is not None else await assignment.agent_loads(session, q.tier))
        if last_resort or not a.supervisor
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
