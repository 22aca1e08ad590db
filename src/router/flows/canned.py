"""Canned replies: prepared answers per language and queue, with placeholders.

Placeholders use Python's format syntax restricted to three names, checked when a reply is
saved (an unknown one is a 422, not a surprise in front of a patient):
`{first_name}` the customer's first name, `{agent_name}` the agent's public name (the policy's
`[public_names]`, never the internal display name), `{reference}` the conversation's
reference (`#<id>`). `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import string
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Agent, CannedReply, Contact, Conversation
from router.auth import Principal
from router.errors import InvalidInput, NotFound
from router.repo import access
from router.repo.queues import queue_by_name
from router.runtime import Runtime

PLACEHOLDERS = ("first_name", "agent_name", "reference")
# When a placeholder has nothing to say: a greeting still reads well without a name.
FALLBACK = {"first_name": "", "agent_name": "", "reference": ""}


def check_body(body: str) -> None:
    try:
        parsed = list(string.Formatter().parse(body))
    except ValueError as exc:
        raise InvalidInput(f"body: {exc} (write {{{{ and }}}} for literal braces)") from exc
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            raise InvalidInput(f"body: unknown placeholder {{{field}}}; use {known}")


def render(body: str, values: dict[str, str]) -> str:
    check_body(body)
    return body.format_map({**FALLBACK, **values})


async def _queue_id(session: AsyncSession, name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return (await queue_by_name(session, name)).id
    except Exception as exc:
        raise InvalidInput(f"unknown queue {name!r}") from exc


async def create(
    session: AsyncSession,
    p: Principal,
    *,
    title: str,
    body: str,
    language: str | None,
    queue: str | None,
    now: datetime,
) -> CannedReply:
    check_body(body)
    reply = CannedReply(
        title=title,
        body=body,
        language=language,
        queue_id=await _queue_id(session, queue),
        created_by_id=p.agent_id,
        created_at=now,
        updated_at=now,
    )
    session.add(reply)
    await session.flush()
    return reply


async def get(session: AsyncSession, reply_id: int) -> CannedReply:
    reply = await session.get(CannedReply, reply_id)
    if reply is None:
        raise NotFound(f"canned reply {reply_id} not found")
    return reply


async def update(
    session: AsyncSession,
    reply_id: int,
    fields: dict[str, object],
    *,
    now: datetime,
) -> CannedReply:
    reply = await get(session, reply_id)
    if "body" in fields:
        check_body(str(fields["body"]))
        reply.body = str(fields["body"])
    if "title" in fields:
        reply.title = str(fields["title"])
    if "language" in fields:
        reply.language = fields["language"] if isinstance(fields["language"], str) else None
    if "queue" in fields:
        q = fields["queue"]
        reply.queue_id = await _queue_id(session, q if isinstance(q, str) else None)
    reply.updated_at = now
    await session.flush()
    return reply


async def delete(session: AsyncSession, reply_id: int) -> None:
    await session.delete(await get(session, reply_id))
    await session.flush()


async def visible(session: AsyncSession, p: Principal) -> ColumnElement[bool]:
    """Replies for a queue the caller may read, or for any queue."""
    queues = await access.readable_queue_ids(session, p)
    return or_(CannedReply.queue_id.is_(None), CannedReply.queue_id.in_(queues))


async def caller_languages(session: AsyncSession, p: Principal) -> list[str]:
    if p.agent_id is None:
        return []
    agent = await session.get(Agent, p.agent_id)
    return list(agent.languages or []) if agent else []


async def list_for(
    session: AsyncSession,
    p: Principal,
    *,
    language: str | None,
    queue: str | None,
    after: int | None,
    limit: int,
    sort: str,
) -> list[CannedReply]:
    """The caller's replies: readable queues; `language` (else the caller's languages; an
    admin token without languages sees all), plus language-neutral ones."""
    stmt = select(CannedReply).where(await visible(session, p))
    langs = [language] if language else await caller_languages(session, p)
    if langs:
        stmt = stmt.where(or_(CannedReply.language.is_(None), CannedReply.language.in_(langs)))
    if queue is not None:
        qid = await _queue_id(session, queue)
        stmt = stmt.where(or_(CannedReply.queue_id.is_(None), CannedReply.queue_id == qid))
    desc = sort == "-created_at"
    if after is not None:
        stmt = stmt.where(CannedReply.id < after if desc else CannedReply.id > after)
    stmt = stmt.order_by(CannedReply.id.desc() if desc else CannedReply.id)
    return list(await session.scalars(stmt.limit(limit + 1)))


async def render_for(
    session: AsyncSession, rt: Runtime, p: Principal, reply_id: int, conversation_id: int
) -> tuple[CannedReply, Conversation, str]:
    """The reply's text for one conversation the caller may read, placeholders filled."""
    conv = await access.get_conversation(session, p, conversation_id)
    reply = await get(session, reply_id)
    if reply.queue_id is not None and reply.queue_id not in await access.readable_queue_ids(
        session, p
    ):
        raise NotFound(f"canned reply {reply_id} not found")
    contact = await session.get(Contact, conv.contact_id)
    name = (contact.name or "").strip() if contact else ""
    agent = await session.get(Agent, p.agent_id) if p.agent_id is not None else None
    values = {
        "first_name": name.split()[0] if name else "",
        "agent_name": rt.policy.public_agent_name(agent.email if agent else None) or "",
        "reference": f"#{conv.id}",
    }
    return reply, conv, render(reply.body, values)
