"""`GET /api/v1/search`: messages, subjects and contacts the caller may read, ranked."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from models import Contact, Conversation, Message
from models.schemas import Page
from router.api.deps import AgentDep, RuntimeDep, SessionDep
from router.repo import audit
from router.repo import search as desk_search
from router.repo.cursor import encode_cursor

api_router = APIRouter(prefix="/api/v1/search", tags=["search"])

KINDS = ("message", "subject", "contact")


class SearchHitRead(BaseModel):
    kind: str  # message | subject | contact
    conversation_id: int | None
    message_id: int | None
    contact_id: int | None
    direction: str | None  # of a message hit: in | out | note
    excerpt: str
    score: float
    created_at: datetime


@api_router.get("", response_model=Page[SearchHitRead])
async def search(
    request: Request,
    p: AgentDep,
    rt: RuntimeDep,
    session: SessionDep,
    q: str = Query(
        min_length=1,
        max_length=desk_search.MAX_QUERY_CHARS,
        description="words; each matches its inflected and unaccented forms (es, ru, en)",
    ),
    types: str | None = Query(
        default=None,
        pattern=r"^(message|subject|contact)(,(message|subject|contact))*$",
        description="comma-separated kinds of hit (default: all)",
    ),
    sort: Literal["relevance", "-created_at", "created_at"] = Query(
        default="relevance",
        description="relevance (default), -created_at (newest first), created_at",
    ),
    cursor: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=20, ge=1, le=50),
) -> Page[SearchHitRead]:
    """Ranked hits over message texts (notes included), subjects and contacts (names, phone
    numbers, e-mail addresses, channel ids), limited to the conversations the caller may
    read, exactly as the conversation list is. Each page of hits is a read of those
    conversations and contacts, and is audited."""
    words = desk_search.query_words(q)
    kinds = tuple(types.split(",")) if types else KINDS
    offset = desk_search.decode_offset(cursor)
    hits, next_offset = await desk_search.search(
        session, p, q, kinds=kinds, sort=sort, offset=offset, limit=limit
    )
    msg_ids = [h.message_id for h in hits if h.message_id is not None]
    conv_ids = {h.conversation_id for h in hits if h.conversation_id is not None}
    contact_ids = {h.contact_id for h in hits if h.contact_id is not None}
    msgs = {m.id: m for m in await session.scalars(select(Message).where(Message.id.in_(msg_ids)))}
    convs = {
        c.id: c
        for c in await session.scalars(select(Conversation).where(Conversation.id.in_(conv_ids)))
    }
    contacts = {
        c.id: c for c in await session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
    }
    items: list[SearchHitRead] = []
    targets: list[tuple[int | None, int | None]] = []
    for h in hits:
        conv = convs.get(h.conversation_id) if h.conversation_id is not None else None
        if h.kind == "message" and h.message_id in msgs:
            m = msgs[h.message_id]
            text, direction = desk_search.excerpt(m.text, words), m.direction
        elif h.kind == "subject" and conv is not None:
            text, direction = conv.subject or "", None
        elif h.kind == "contact" and h.contact_id in contacts:
            text, direction = contacts[h.contact_id].name or "", None
        else:
            continue
        items.append(
            SearchHitRead(
                kind=h.kind,
                conversation_id=h.conversation_id,
                message_id=h.message_id,
                contact_id=h.contact_id
                if h.kind == "contact"
                else (conv.contact_id if conv else None),
                direction=direction,
                excerpt=text,
                score=h.score,
                created_at=h.created_at,
            )
        )
        targets.append((items[-1].contact_id, h.conversation_id))
    audit.record_many(session, request, p, "search", targets, now=rt.now(), detail=q)
    return Page(
        items=items,
        next_cursor=encode_cursor(next_offset) if next_offset is not None else None,
    )
