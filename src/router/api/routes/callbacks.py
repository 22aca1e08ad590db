"""Callback requests for agents: the ring-back worklist and its outcomes.

Visibility follows the conversation: a request is listed and actionable only by agents who may
read its conversation's queue (a first-line agent never sees a second-line callback).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select

from models import CallbackRequest, Conversation, Queue
from models.schemas import Page
from router.api.deps import AgentDep, IdPath, RuntimeDep, SessionDep
from router.decide import callbacks as decide_callbacks
from router.errors import Conflict, ConversationNotFound, NotFound
from router.flows import callbacks
from router.repo import access
from router.repo.access import locked
from router.repo.cursor import decode_cursor, encode_cursor

api_router = APIRouter(prefix="/api/v1/callbacks", tags=["callbacks"])

StatusFilter = Literal["open", "done", "no_answer", "wrong_number", "cancelled", "all"]


class CallbackSlaRead(BaseModel):
    state: str  # running | breached | met | stopped
    due_at: datetime | None
    time_left_s: float | None


class CallbackRead(BaseModel):
    id: int
    conversation_id: int
    contact_id: int
    phone: str
    queue: str | None  # the conversation's current queue
    priority: str
    status: str
    missed_count: int
    attempts: int
    first_call_at: datetime
    last_call_at: datetime
    last_call_status: str
    next_attempt_at: datetime | None
    sla: CallbackSlaRead
    outcome: str | None
    note: str | None
    closed_at: datetime | None
    closed_by_agent_id: int | None
    created_at: datetime
    updated_at: datetime | None


class OutcomeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: decide_callbacks.Outcome
    note: str | None = Field(default=None, max_length=1000)


def _read(cb: CallbackRequest, queue: str | None, now: datetime) -> CallbackRead:
    view = decide_callbacks.sla_view(cb, now)
    return CallbackRead(
        id=cb.id,
        conversation_id=cb.conversation_id,
        contact_id=cb.contact_id,
        phone=cb.phone,
        queue=queue,
        priority=cb.priority,
        status=cb.status,
        missed_count=cb.missed_count,
        attempts=cb.attempts,
        first_call_at=cb.first_call_at,
        last_call_at=cb.last_call_at,
        last_call_status=cb.last_call_status,
        next_attempt_at=cb.next_attempt_at,
        sla=CallbackSlaRead(state=view.state, due_at=view.due_at, time_left_s=view.time_left_s),
        outcome=cb.outcome,
        note=cb.note,
        closed_at=cb.closed_at,
        closed_by_agent_id=cb.closed_by_agent_id,
        created_at=cb.created_at,
        updated_at=cb.updated_at,
    )


@api_router.get("", response_model=Page[CallbackRead])
async def list_callbacks(
    p: AgentDep,
    rt: RuntimeDep,
    session: SessionDep,
    queue: str | None = Query(default=None, max_length=64),
    status: StatusFilter = "open",
    sort: Literal["created_at", "-created_at"] = Query(
        default="created_at", description="created_at (oldest first, default) or -created_at"
    ),
    cursor: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=50, ge=1, le=200),
) -> Page[CallbackRead]:
    """Oldest first (the longest-waiting customer on top), with each request's SLA."""
    visible = await access.readable_queue_ids(session, p)
    stmt = (
        select(CallbackRequest, Queue.name)
        .join(Conversation, Conversation.id == CallbackRequest.conversation_id)
        .outerjoin(Queue, Queue.id == Conversation.queue_id)
        .where(or_(Conversation.queue_id.in_(visible), Conversation.queue_id.is_(None)))
    )
    if status != "all":
        stmt = stmt.where(CallbackRequest.status == status)
    if queue:
        stmt = stmt.where(Queue.name == queue)
    newest = sort == "-created_at"
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(CallbackRequest.id < after if newest else CallbackRequest.id > after)
    order = CallbackRequest.id.desc() if newest else CallbackRequest.id
    rows = (await session.execute(stmt.order_by(order).limit(limit + 1))).all()
    page = rows[:limit]
    now = rt.now()
    return Page(
        items=[_read(cb, qname, now) for cb, qname in page],
        next_cursor=encode_cursor(page[-1][0].id) if len(rows) > limit else None,
    )


@api_router.post("/{callback_id}/outcome", response_model=CallbackRead)
async def record_outcome(
    callback_id: IdPath, body: OutcomeBody, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> CallbackRead:
    """done: the customer was reached; no_answer: try again later (after the 3rd, closed);
    wrong_number: the number is not the customer's. 409 when already closed."""
    stmt = select(CallbackRequest).where(CallbackRequest.id == callback_id)
    stmt = locked(session, stmt)  # two agents recording at once: the second gets 409
    cb = await session.scalar(stmt)
    if cb is None:
        raise NotFound(f"callback {callback_id} not found")
    try:
        conv = await access.get_conversation(session, p, cb.conversation_id)
    except ConversationNotFound as exc:
        # Same answer as a missing id: ids of unreadable callbacks leak nothing.
        raise NotFound(f"callback {callback_id} not found") from exc
    if cb.status != "open":
        raise Conflict(f"callback {callback_id} is already closed ({cb.status})")
    now = rt.now()
    await callbacks.record_outcome(
        session, rt, conv, cb, body.outcome, agent_id=p.agent_id, note=body.note, now=now
    )
    q = await session.get(Queue, conv.queue_id) if conv.queue_id is not None else None
    return _read(cb, q.name if q else None, now)
