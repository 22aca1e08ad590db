"""What agents do to conversations: read, reply, note, claim, assign, transfer, escalate,
change status. Every action checks the caller's reach, writes, records an event."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Agent,
    Attachment,
    ContactIdentity,
    Conversation,
    Event,
    Message,
    OutboxItem,
    Queue,
)
from models.schemas import MAX_ID, AttachmentRead, ConversationRead, MessageRead
from router import assignment, flows, paging, timers
from router.auth import Principal, can_read_tier
from router.errors import (
    Conflict,
    ConversationClosed,
    ConversationMoved,
    ConversationNotFound,
    Forbidden,
    InvalidInput,
    NotFound,
)
from router.runtime import Runtime


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid cursor") from exc
    if not 0 <= value <= MAX_ID:  # a forged cursor must not overflow the id column
        raise InvalidInput("invalid cursor")
    return value


async def readable_queue_ids(session: AsyncSession, p: Principal) -> list[int]:
    return list(await session.scalars(select(Queue.id).where(Queue.tier <= p.max_tier)))


async def visible_conversations(session: AsyncSession, p: Principal) -> ColumnElement[bool]:
    """The conversations the caller may read: the one rule the list and search both use."""
    visible = await readable_queue_ids(session, p)
    return or_(Conversation.queue_id.in_(visible), Conversation.queue_id.is_(None))


async def get_conversation(
    session: AsyncSession, p: Principal, conv_id: int, *, for_update: bool = False
) -> Conversation:
    """The conversation if the caller may read it; otherwise 404, so ids leak nothing."""
    stmt = select(Conversation).where(Conversation.id == conv_id)
    if for_update and session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    conv = await session.scalar(stmt)
    if conv is None:
        raise ConversationNotFound(f"conversation {conv_id} not found")
    q = await flows.queue_of(session, conv)
    if not can_read_tier(p, q.tier if q else 1):
        await _raise_if_moved_from(session, p, conv_id)
        raise ConversationNotFound(f"conversation {conv_id} not found")
    return conv


async def _raise_if_moved_from(session: AsyncSession, p: Principal, conv_id: int) -> None:
    """An agent whose conversation routing moved out of their reach learns why (410), once
    told by a `conversation.moved` event; anyone else still gets a 404 that reveals nothing."""
    if p.agent_id is None:
        return
    moved = await session.scalars(
        select(Event)
        .where(Event.conversation_id == conv_id, Event.type == "conversation.moved")
        .order_by(Event.id.desc())
        .limit(20)
    )
    for ev in moved:
        data = ev.data or {}
        if data.get("to_agent_id") == p.agent_id:
            reason = str(data.get("reason") or "moved")
            raise ConversationMoved(
                f"conversation {conv_id} moved to {data.get('queue')}: {reason}; "
                "it is no longer assigned to you",
                extra={"moved_to_queue": data.get("queue"), "reason": reason},
            )


async def list_conversations(
    session: AsyncSession,
    p: Principal,
    *,
    status: str | None = None,
    queue: str | None = None,
    assignee: str | None = None,
    priority: str | None = None,
    channel: str | None = None,
    contact_id: int | None = None,
    tag: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    oldest_first: bool = False,
) -> tuple[list[Conversation], str | None]:
    stmt = select(Conversation).where(await visible_conversations(session, p))
    if status:
        stmt = stmt.where(Conversation.status.in_(status.split(",")))
    if queue:
        stmt = stmt.join(Queue, Queue.id == Conversation.queue_id).where(Queue.name == queue)
    if assignee == "none":
        stmt = stmt.where(Conversation.assignee_id.is_(None))
    elif assignee == "me":
        stmt = stmt.where(Conversation.assignee_id == p.agent_id)
    elif assignee:
        try:
            stmt = stmt.where(Conversation.assignee_id == int(assignee))
        except ValueError as exc:
            raise InvalidInput("assignee must be an agent id, 'me' or 'none'") from exc
    if priority:
        stmt = stmt.where(Conversation.priority == priority)
    if channel:
        stmt = stmt.where(Conversation.channel == channel)
    if contact_id is not None:
        stmt = stmt.where(Conversation.contact_id == contact_id)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(Conversation.id > after if oldest_first else Conversation.id < after)
    if tag:
        stmt = stmt.where(_has_tag(session, tag))
    order = Conversation.id if oldest_first else Conversation.id.desc()
    rows = list(await session.scalars(stmt.order_by(order).limit(limit + 1)))
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    return page, next_cursor


def _has_tag(session: AsyncSession, tag: str) -> ColumnElement[bool]:
    """`tag in conversation.tags`, with each backend's JSON operator (JSONB @> / json_each)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return type_coerce(Conversation.tags, JSONB).contains([tag])
    each = func.json_each(Conversation.tags).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value == tag))


async def conversation_reads(
    session: AsyncSession, rt: Runtime, convs: Sequence[Conversation]
) -> list[ConversationRead]:
    queues = {q.id: q.name for q in await session.scalars(select(Queue))}
    slas = await timers.running(session, rt, [c.id for c in convs])
    return [
        ConversationRead(
            id=c.id,
            status=c.status,
            queue=queues.get(c.queue_id) if c.queue_id is not None else None,
            priority=c.priority,
            assignee_id=c.assignee_id,
            contact_id=c.contact_id,
            channel=c.channel,
            language=c.language,
            subject=c.subject,
            tags=list(c.tags or []),
            routing_reasons=list(c.routing_reasons or []),
            sla=slas.get(c.id, []),
            created_at=c.created_at,
            updated_at=c.updated_at,
            last_inbound_at=c.last_inbound_at,
            waiting_since=c.waiting_since,
            resolved_at=c.resolved_at,
            csat=c.csat,
        )
        for c in convs
    ]


async def list_messages(
    session: AsyncSession, conv: Conversation, *, cursor: str | None, limit: int
) -> tuple[list[MessageRead], str | None]:
    """Oldest first; the cursor is the last id seen (like a chat history)."""
    stmt = select(Message).where(Message.conversation_id == conv.id)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(Message.id > after)
    rows = list(await session.scalars(stmt.order_by(Message.id).limit(limit + 1)))
    page = rows[:limit]
    return await message_reads(session, page), (
        encode_cursor(page[-1].id) if len(rows) > limit else None
    )


async def message_reads(session: AsyncSession, msgs: Sequence[Message]) -> list[MessageRead]:
    ids = [m.id for m in msgs]
    atts: dict[int, list[AttachmentRead]] = {}
    errors: dict[int, str | None] = {}
    if ids:
        for a in await session.scalars(select(Attachment).where(Attachment.message_id.in_(ids))):
            atts.setdefault(a.message_id, []).append(AttachmentRead.model_validate(a))
        for mid, err in (
            await session.execute(
                select(OutboxItem.message_id, OutboxItem.last_error).where(
                    OutboxItem.message_id.in_(ids)
                )
            )
        ).all():
            errors[mid] = err
    return [
        MessageRead(
            id=m.id,
            conversation_id=m.conversation_id,
            direction=m.direction,
            channel=m.channel,
            kind=m.kind,
            text=m.text,
            author_agent_id=m.author_agent_id,
            created_at=m.created_at,
            sent_at=m.sent_at,
            delivery_status=m.delivery_status,
            language=m.language,
            attachments=atts.get(m.id, []),
            error=errors.get(m.id),
            call=_call_details(m),
        )
        for m in msgs
    ]


CALL_FIELDS = (
    "call_status",
    "direction",
    "duration_s",
    "agent",
    "provider",
    "call_id",
    "started_at",
    "transcript",
    "from",
    "to",
)


def _call_details(m: Message) -> dict[str, object] | None:
    if m.kind != "call":
        return None
    meta = m.channel_meta or {}
    return {k: meta[k] for k in CALL_FIELDS if meta.get(k) is not None}


def _require_agent(p: Principal) -> None:
    if p.max_tier == 0:
        raise Forbidden("this token may not act on conversations")


async def reply(
    session: AsyncSession,
    rt: Runtime,
    p: Principal,
    conv_id: int,
    *,
    text: str,
    internal: bool,
    channel: str | None,
    identity_id: int | None = None,
) -> Message:
    _require_agent(p)
    conv = await get_conversation(session, p, conv_id, for_update=True)
    now = rt.now()
    if conv.status == "closed":
        raise ConversationClosed(f"conversation {conv_id} is closed")
    if internal:
        note = Message(
            conversation_id=conv.id,
            direction="note",
            channel=conv.channel,
            kind="text",
            text=text,
            author_agent_id=p.agent_id,
            created_at=now,
            delivery_status="none",
        )
        session.add(note)
        await session.flush()
        await flows.conv_event(
            session, "note.created", conv, agent_id=p.agent_id, data={"message_id": note.id}
        )
        return note
    recipient = None
    if identity_id is not None:
        ident = await session.get(ContactIdentity, identity_id)
        if ident is None or ident.contact_id != conv.contact_id:
            raise InvalidInput("identity_id is not one of this conversation's contact")
        if ident.kind not in flows.TEXT_CHANNELS or (channel and channel != ident.kind):
            raise InvalidInput(f"cannot reply to a {ident.kind} identity on this channel")
        if ident.unreachable:
            raise Conflict(f"the contact is unreachable on {ident.kind}")
        channel, recipient = ident.kind, ident.value
    msg = await flows.enqueue_outbound(
        session,
        rt,
        conv,
        text,
        author_agent_id=p.agent_id,
        channel=channel,
        recipient=recipient,
        now=now,
    )
    if conv.first_response_at is None:
        conv.first_response_at = now
    conv.waiting_since = None
    if p.agent_id is not None and p.max_tier >= 2:
        # A clinician (or supervisor) answered: an urgent conversation is no longer unanswered.
        await paging.on_clinician_reply(session, conv, now)
    if conv.assignee_id is None and p.agent_id is not None and p.role != "admin":
        # Answering an unassigned conversation takes it, as in every shared inbox.
        await assignment.assign_to(
            session,
            conv,
            p.agent_id,
            now,
            reason="replied",
            by_agent_id=p.agent_id,
            only_if_free=True,
        )
    await timers.on_agent_reply(session, rt, conv, now)
    await session.flush()
    return msg


async def _agent(session: AsyncSession, agent_id: int) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None or not agent.active or agent.role == "integration":
        raise InvalidInput(f"agent {agent_id} does not exist or cannot take conversations")
    return agent


def _agent_principal(a: Agent) -> Principal:
    return Principal(role=a.role, agent_id=a.id, tier=a.tier, name=a.name)


async def claim(session: AsyncSession, rt: Runtime, p: Principal, conv_id: int) -> Conversation:
    _require_agent(p)
    if p.agent_id is None:
        raise InvalidInput("the bootstrap admin token is not an agent and cannot claim")
    conv = await get_conversation(session, p, conv_id, for_update=True)
    if conv.status in ("resolved", "closed"):
        raise ConversationClosed(f"conversation {conv_id} is {conv.status}")
    if conv.assignee_id == p.agent_id:
        return conv
    ok = await assignment.assign_to(
        session,
        conv,
        p.agent_id,
        rt.now(),
        reason="claimed",
        by_agent_id=p.agent_id,
        only_if_free=True,
    )
    if not ok:
        raise Conflict(f"conversation {conv_id} is already assigned to agent {conv.assignee_id}")
    return conv


async def assign(
    session: AsyncSession,
    rt: Runtime,
    p: Principal,
    conv_id: int,
    agent_id: int | None,
    reason: str,
) -> Conversation:
    """Managers assign anyone; agents may only hand over a conversation they hold."""
    _require_agent(p)
    conv = await get_conversation(session, p, conv_id, for_update=True)
    if not p.is_manager and conv.assignee_id != p.agent_id:
        raise Forbidden("only supervisors assign conversations held by someone else; use claim")
    now = rt.now()
    if agent_id is None:
        await assignment.unassign(session, conv, now, reason=reason or "unassigned")
        return conv
    target = await _agent(session, agent_id)
    q = await flows.queue_of(session, conv)
    if not can_read_tier(_agent_principal(target), q.tier if q else 1):
        raise InvalidInput(f"agent {agent_id} cannot work on {q.name if q else 'this'} queue")
    await assignment.assign_to(
        session, conv, agent_id, now, reason=reason or "assigned", by_agent_id=p.agent_id
    )
    return conv


async def transfer(
    session: AsyncSession,
    rt: Runtime,
    p: Principal,
    conv_id: int,
    *,
    queue: str | None,
    agent_id: int | None,
    reason: str,
) -> Conversation:
    _require_agent(p)
    if queue is None and agent_id is None:
        raise InvalidInput("give a queue, an agent_id, or both")
    conv = await get_conversation(session, p, conv_id, for_update=True)
    if conv.status == "closed":
        raise ConversationClosed(f"conversation {conv_id} is closed")
    now = rt.now()
    current = await flows.queue_of(session, conv)
    if queue is not None and (current is None or queue != current.name):
        try:
            target_q = await flows.queue_by_name(session, queue)
        except Conflict as exc:
            raise InvalidInput(f"unknown queue {queue!r}") from exc
        # Any agent may hand work to another queue (up, or back down when it was misrouted);
        # moving it out of their own reach is allowed: that is what an escalation is.
        conv.queue_id = target_q.id
        conv.updated_at = now
        conv.routing_reasons = [
            *list(conv.routing_reasons or [])[-29:],
            f"transferred to {queue} by agent {p.agent_id}: {reason or 'no reason given'}",
        ]
        await flows.conv_event(
            session,
            "conversation.transferred",
            conv,
            agent_id=p.agent_id,
            data={
                "from_queue": current.name if current else None,
                "queue": queue,
                "reason": reason,
            },
            tier=min(current.tier if current else 1, target_q.tier),
        )
        if agent_id is None:
            await assignment.unassign(session, conv, now, reason="transferred")
            await timers.on_queue_change(session, rt, conv, now)
            await assignment.try_assign(session, rt, conv, now)
        else:
            await timers.on_queue_change(session, rt, conv, now)
    if agent_id is not None:
        target = await _agent(session, agent_id)
        q = await flows.queue_of(session, conv)
        if not can_read_tier(_agent_principal(target), q.tier if q else 1):
            raise InvalidInput(f"agent {agent_id} cannot work on the {q.name if q else ''} queue")
        await assignment.assign_to(
            session, conv, agent_id, now, reason=reason or "transferred", by_agent_id=p.agent_id
        )
    return conv


async def escalate(
    session: AsyncSession,
    rt: Runtime,
    p: Principal,
    conv_id: int,
    *,
    reason: str,
    priority: str | None,
) -> Conversation:
    """First line → second line with a reason the clinician will read first."""
    _require_agent(p)
    conv = await get_conversation(session, p, conv_id, for_update=True)
    if conv.status == "closed":
        raise ConversationClosed(f"conversation {conv_id} is closed")
    current = await flows.queue_of(session, conv)
    second = [q for q in rt.policy.queues if q.tier == 2]
    if not second:
        raise Conflict("the policy has no second-line queue")
    if current is not None and current.tier >= 2:
        raise Conflict(f"conversation {conv_id} is already on the second line")
    now = rt.now()
    target = await flows.queue_by_name(session, second[0].name)
    conv.queue_id = target.id
    order = ["low", "normal", "high", "urgent"]
    if priority and order.index(priority) > order.index(conv.priority):
        conv.priority = priority
    conv.updated_at = now
    conv.routing_reasons = [
        *list(conv.routing_reasons or [])[-29:],
        f"escalated to {target.name} by agent {p.agent_id}: {reason}",
    ]
    await flows.conv_event(
        session,
        "conversation.escalated",
        conv,
        agent_id=p.agent_id,
        tier=1,  # the first line sees that it left their queue
        data={
            "from_queue": current.name if current else None,
            "queue": target.name,
            "reason": reason,
            "priority": conv.priority,
        },
    )
    await assignment.unassign(session, conv, now, reason="escalated")
    await timers.on_queue_change(session, rt, conv, now)
    await assignment.try_assign(session, rt, conv, now)
    return conv


ALLOWED = {
    "open": {"pending", "resolved", "closed"},
    "pending": {"open", "resolved", "closed"},
    "resolved": {"open", "closed"},
    "closed": set(),
}


async def set_status(
    session: AsyncSession, rt: Runtime, p: Principal, conv_id: int, status: str
) -> Conversation:
    _require_agent(p)
    conv = await get_conversation(session, p, conv_id, for_update=True)
    if status == conv.status:
        return conv
    if status not in ALLOWED[conv.status]:
        raise Conflict(f"cannot change status from {conv.status} to {status}")
    now = rt.now()
    previous = conv.status
    conv.status = status
    conv.updated_at = now
    if status in ("resolved", "closed"):
        conv.resolved_at = conv.resolved_at or now
    else:
        conv.resolved_at = None
    await timers.on_status(session, rt, conv, previous, now)
    await flows.conv_event(
        session,
        f"conversation.{status}" if status != "open" else "conversation.reopened",
        conv,
        agent_id=p.agent_id,
        data={"from": previous, "to": status},
    )
    if status == "resolved" and previous != "resolved":
        await flows.after_resolved(session, rt, conv)
    if status in ("resolved", "closed"):
        # Capacity freed: offer waiting work now rather than at the next sweep.
        await assignment.assign_waiting(session, rt, now)
    return conv


async def queue_stats(session: AsyncSession, rt: Runtime, now: datetime) -> list[dict[str, object]]:
    rows = []
    for q in await session.scalars(select(Queue).order_by(Queue.tier, Queue.name)):
        base = select(func.count()).select_from(Conversation).where(Conversation.queue_id == q.id)
        depth = (
            await session.scalar(
                base.where(Conversation.status == "open", Conversation.assignee_id.is_(None))
            )
            or 0
        )
        open_ = await session.scalar(base.where(Conversation.status.in_(("open", "pending")))) or 0
        oldest = await session.scalar(
            select(func.min(Conversation.waiting_since)).where(
                Conversation.queue_id == q.id,
                Conversation.status == "open",
                Conversation.waiting_since.is_not(None),
            )
        )
        online = (
            await session.scalar(
                select(func.count())
                .select_from(Agent)
                .where(Agent.active.is_(True), Agent.presence == "online", Agent.tier == q.tier)
            )
            or 0
        )
        met, breached = await timers.outcomes_24h(session, q, now)
        rows.append(
            {
                "name": q.name,
                "title": q.title,
                "tier": q.tier,
                "depth": depth,
                "open": open_,
                "oldest_wait_s": (now - oldest).total_seconds() if oldest else None,
                "online_agents": online,
                "sla_met_24h": met,
                "sla_breached_24h": breached,
            }
        )
    return rows


async def require_visible_contact(session: AsyncSession, p: Principal, contact_id: int) -> None:
    if p.max_tier == 0:
        raise Forbidden("this token may not read contacts")
    if p.max_tier >= 2:
        return
    # A first-line agent sees a contact only through a conversation they may read.
    visible = await readable_queue_ids(session, p)
    n = await session.scalar(
        select(func.count())
        .select_from(Conversation)
        .where(
            Conversation.contact_id == contact_id,
            or_(Conversation.queue_id.in_(visible), Conversation.queue_id.is_(None)),
        )
    )
    if not n:
        raise NotFound(f"contact {contact_id} not found")
