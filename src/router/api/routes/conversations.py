from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from models.schemas import (
    MAX_ID,
    AssignBody,
    ConversationRead,
    EscalateBody,
    MessageRead,
    Page,
    ReplyCreate,
    StatusBody,
    TransferBody,
)
from router.api.deps import AgentDep, IdPath, RuntimeDep, SessionDep
from router.flows import actions
from router.read import conversations as reads
from router.repo import access, audit

api_router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


async def _one(session: SessionDep, rt: RuntimeDep, conv: object) -> ConversationRead:
    return (await reads.conversation_reads(session, rt, [conv]))[0]  # type: ignore[list-item]


@api_router.get("", response_model=Page[ConversationRead])
async def list_conversations(
    p: AgentDep,
    rt: RuntimeDep,
    session: SessionDep,
    status: str | None = Query(
        default=None, pattern=r"^(open|pending|resolved|closed)(,(open|pending|resolved|closed))*$"
    ),
    queue: str | None = Query(default=None, max_length=64),
    assignee: str | None = Query(
        default=None, pattern=r"^(me|none|[0-9]{1,18})$", description="agent id, me or none"
    ),
    priority: str | None = Query(default=None, pattern=r"^(low|normal|high|urgent)$"),
    channel: str | None = Query(default=None, pattern=r"^(telegram|webchat|email|calls|app)$"),
    contact_id: int | None = Query(default=None, ge=1, le=MAX_ID),
    tag: str | None = Query(default=None, max_length=64),
    sort: Literal["-created_at", "created_at"] = Query(
        default="-created_at", description="-created_at (newest first, default) or created_at"
    ),
    cursor: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=50, ge=1, le=200),
) -> Page[ConversationRead]:
    """Newest first (or oldest with `sort=created_at`), filtered to the queues the caller
    may read."""
    convs, next_cursor = await reads.list_conversations(
        session,
        p,
        status=status,
        queue=queue,
        assignee=assignee,
        priority=priority,
        channel=channel,
        contact_id=contact_id,
        tag=tag,
        cursor=cursor,
        limit=limit,
        oldest_first=sort == "created_at",
    )
    return Page(items=await reads.conversation_reads(session, rt, convs), next_cursor=next_cursor)


@api_router.get("/{conversation_id}", response_model=ConversationRead)
async def get_conversation(
    conversation_id: IdPath, p: AgentDep, rt: RuntimeDep, session: SessionDep, request: Request
) -> ConversationRead:
    """Audited: the subject and routing reasons quote the patient."""
    conv = await access.get_conversation(session, p, conversation_id)
    audit.record(
        session,
        request,
        p,
        "conversation",
        now=rt.now(),
        contact_id=conv.contact_id,
        conversation_id=conv.id,
    )
    return await _one(session, rt, conv)


@api_router.get("/{conversation_id}/messages", response_model=Page[MessageRead])
async def list_messages(
    conversation_id: IdPath,
    p: AgentDep,
    rt: RuntimeDep,
    session: SessionDep,
    request: Request,
    sort: Literal["created_at"] = Query(
        default="created_at", description="created_at: oldest first, like a chat history"
    ),
    cursor: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=100, ge=1, le=500),
) -> Page[MessageRead]:
    """Oldest first, internal notes included (agents only ever). Each read is audited."""
    conv = await access.get_conversation(session, p, conversation_id)
    audit.record(
        session,
        request,
        p,
        "conversation.messages",
        now=rt.now(),
        contact_id=conv.contact_id,
        conversation_id=conv.id,
    )
    items, next_cursor = await reads.list_messages(session, conv, cursor=cursor, limit=limit)
    return Page(items=items, next_cursor=next_cursor)


@api_router.post("/{conversation_id}/messages", response_model=MessageRead, status_code=201)
async def post_message(
    conversation_id: IdPath, body: ReplyCreate, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> MessageRead:
    """Reply on the customer's channel (through the outbox), or add an internal note."""
    msg = await actions.reply(
        session,
        rt,
        p,
        conversation_id,
        text=body.text,
        internal=body.internal,
        channel=body.channel,
        identity_id=body.identity_id,
    )
    return (await reads.message_reads(session, [msg]))[0]


@api_router.post("/{conversation_id}/claim", response_model=ConversationRead)
async def claim(
    conversation_id: IdPath, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> ConversationRead:
    """Take an unassigned conversation; 409 if someone else already holds it."""
    return await _one(session, rt, await actions.claim(session, rt, p, conversation_id))


@api_router.post("/{conversation_id}/assign", response_model=ConversationRead)
async def assign(
    conversation_id: IdPath, body: AssignBody, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> ConversationRead:
    conv = await actions.assign(session, rt, p, conversation_id, body.agent_id, body.reason)
    return await _one(session, rt, conv)


@api_router.post("/{conversation_id}/transfer", response_model=ConversationRead)
async def transfer(
    conversation_id: IdPath, body: TransferBody, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> ConversationRead:
    conv = await actions.transfer(
        session,
        rt,
        p,
        conversation_id,
        queue=body.queue,
        agent_id=body.agent_id,
        reason=body.reason,
    )
    return await _one(session, rt, conv)


@api_router.post("/{conversation_id}/escalate", response_model=ConversationRead)
async def escalate(
    conversation_id: IdPath, body: EscalateBody, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> ConversationRead:
    """First line → second line, with the reason the clinician reads first."""
    conv = await actions.escalate(
        session, rt, p, conversation_id, reason=body.reason, priority=body.priority
    )
    return await _one(session, rt, conv)


@api_router.post("/{conversation_id}/status", response_model=ConversationRead)
async def set_status(
    conversation_id: IdPath, body: StatusBody, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> ConversationRead:
    conv = await actions.set_status(session, rt, p, conversation_id, body.status)
    return await _one(session, rt, conv)
