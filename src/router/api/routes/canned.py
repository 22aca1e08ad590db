"""Canned replies: supervisors manage them; agents list and render them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from models import CannedReply
from models.schemas import MAX_ID, Page
from router.api.deps import AgentDep, IdPath, ManagerDep, RuntimeDep, SessionDep
from router.errors import NotFound
from router.flows import canned
from router.repo import access
from router.repo.cursor import decode_cursor, encode_cursor

api_router = APIRouter(prefix="/api/v1/canned-replies", tags=["canned replies"])

Language = Field(default=None, pattern=r"^[a-z]{2}$", description="ISO 639-1; none: any")
QueueName = Field(default=None, max_length=64, description="queue name; none: every queue")


class CannedCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=120)
    body: str = Field(min_length=1, max_length=4000)
    language: str | None = Language
    queue: str | None = QueueName


class CannedUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=120)
    body: str | None = Field(default=None, min_length=1, max_length=4000)
    language: str | None = Language
    queue: str | None = QueueName


class CannedRead(BaseModel):
    id: int
    title: str
    body: str
    language: str | None
    queue: str | None
    placeholders: list[str]
    created_at: datetime
    updated_at: datetime | None


class RenderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: int = Field(ge=1, le=MAX_ID)


class Rendered(BaseModel):
    id: int
    conversation_id: int
    text: str


async def _read(session: AsyncSession, r: CannedReply) -> CannedRead:
    q = None
    if r.queue_id is not None:
        q = next((n for i, n in (await _names(session)).items() if i == r.queue_id), None)
    return CannedRead(
        id=r.id,
        title=r.title,
        body=r.body,
        language=r.language,
        queue=q,
        placeholders=list(canned.PLACEHOLDERS),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


async def _names(session: AsyncSession) -> dict[int, str]:
    from sqlalchemy import select

    from models import Queue

    return {q.id: q.name for q in await session.scalars(select(Queue))}


@api_router.get("", response_model=Page[CannedRead])
async def list_replies(
    p: AgentDep,
    session: SessionDep,
    language: str | None = Query(
        default=None, pattern=r"^[a-z]{2}$", description="default: the caller's languages"
    ),
    queue: str | None = Query(default=None, max_length=64),
    sort: Literal["created_at", "-created_at"] = Query(
        default="created_at", description="created_at (oldest first, default) or -created_at"
    ),
    cursor: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=100, ge=1, le=200),
) -> Page[CannedRead]:
    """Replies for queues the caller may read (or any queue), in `language` or the caller's
    languages, plus language-neutral ones."""
    rows = await canned.list_for(
        session,
        p,
        language=language,
        queue=queue,
        after=decode_cursor(cursor),
        limit=limit,
        sort=sort,
    )
    page = rows[:limit]
    return Page(
        items=[await _read(session, r) for r in page],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


@api_router.post("", response_model=CannedRead, status_code=201)
async def create_reply(
    body: CannedCreate, p: ManagerDep, rt: RuntimeDep, session: SessionDep
) -> CannedRead:
    """Placeholders: {first_name}, {agent_name}, {reference}; {{ and }} are literal braces."""
    r = await canned.create(
        session,
        p,
        title=body.title,
        body=body.body,
        language=body.language,
        queue=body.queue,
        now=rt.now(),
    )
    return await _read(session, r)


async def _visible(session: AsyncSession, p: AgentDep, reply_id: int) -> CannedReply:
    r = await canned.get(session, reply_id)
    if r.queue_id is not None and r.queue_id not in await access.readable_queue_ids(session, p):
        raise NotFound(f"canned reply {reply_id} not found")
    return r


@api_router.get("/{reply_id}", response_model=CannedRead)
async def get_reply(reply_id: IdPath, p: AgentDep, session: SessionDep) -> CannedRead:
    return await _read(session, await _visible(session, p, reply_id))


@api_router.patch("/{reply_id}", response_model=CannedRead)
async def update_reply(
    reply_id: IdPath, body: CannedUpdate, _p: ManagerDep, rt: RuntimeDep, session: SessionDep
) -> CannedRead:
    """Only the fields given change; `language` or `queue` set to null means any."""
    r = await canned.update(session, reply_id, body.model_dump(exclude_unset=True), now=rt.now())
    return await _read(session, r)


@api_router.delete("/{reply_id}", status_code=204)
async def delete_reply(reply_id: IdPath, _p: ManagerDep, session: SessionDep) -> None:
    await canned.delete(session, reply_id)


@api_router.post("/{reply_id}/render", response_model=Rendered)
async def render_reply(
    reply_id: IdPath, body: RenderBody, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> Rendered:
    """The reply's text for a conversation the caller may read, placeholders filled; send it
    with `POST /api/v1/conversations/{id}/messages` (after editing, if need be)."""
    await _visible(session, p, reply_id)
    r, conv, text = await canned.render_for(session, rt, p, reply_id, body.conversation_id)
    return Rendered(id=r.id, conversation_id=conv.id, text=text)
