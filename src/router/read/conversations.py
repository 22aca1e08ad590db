"""Read models for the API: conversation and message lists, their views, queue figures.
Every list goes through the caller's reach (`router.repo.access`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from models import Agent, Attachment, Conversation, Message, OutboxItem, Queue
from models.messages import CallLog
from models.schemas import AttachmentRead, ConversationRead, MessageRead
from models.vocab import ACTIVE_STATUSES
from router.auth import Principal
from router.errors import InvalidInput
from router.flows import sla as timers
from router.repo.access import is_postgres, visible_conversations
from router.repo.cursor import decode_cursor, encode_cursor
from router.runtime import Runtime


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
    if is_postgres(session):
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


def _call_details(m: Message) -> dict[str, object] | None:
    call = CallLog.from_meta(m.channel_meta) if m.kind == "call" else None
    return call.details() if call is not None else None


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
        open_ = await session.scalar(base.where(Conversation.status.in_(ACTIVE_STATUSES))) or 0
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
