"""What one visitor may see, read from the database: their messages and their status.

A visitor sees the web chat messages they wrote (external id `<visitor>:<client id>`) and the
replies addressed to them (recipient = their visitor id), in conversations of the contact
that owns their identity; never notes, never another channel, never another visitor's
messages, even after agents merge two visitors into one contact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Agent, Attachment, ContactIdentity, Conversation, Message
from router.decide import wait
from router.flows.outbound import estimate_wait
from router.repo.access import locked
from router.repo.queues import queue_of
from router.runtime import Runtime

PAGE = 200
SHOWN = "shown_at"  # channel_meta key: when a socket first sent this reply to the visitor
# Ids are taken at insert but become visible at commit, so on PostgreSQL a reply with a lower
# id can commit just after a message with a higher one was read. A socket therefore keeps
# re-reading this many seconds behind the newest id it sent, skipping what it already sent.
SETTLE_S = 10.0


def external_id(visitor_id: str, client_id: str) -> str:
    return f"{visitor_id}:{client_id}"


def _conversations_of(visitor_id: str) -> Any:
    return (
        select(Conversation.id)
        .join(ContactIdentity, ContactIdentity.contact_id == Conversation.contact_id)
        .where(ContactIdentity.kind == "webchat", ContactIdentity.value == visitor_id)
    )


async def latest_conversation(session: AsyncSession, visitor_id: str) -> Conversation | None:
    return await session.scalar(
        select(Conversation)
        .where(Conversation.id.in_(_conversations_of(visitor_id)))
        .order_by(Conversation.id.desc())
        .limit(1)
    )


def _belongs(msg: Message, visitor_id: str) -> bool:
    if msg.direction == "in":
        return (msg.external_id or "").startswith(f"{visitor_id}:")
    return (msg.channel_meta or {}).get("recipient") == visitor_id


@dataclass(frozen=True)
class Page:
    frames: list[dict[str, Any]]
    last_id: int  # the last id read, past rows filtered out: where the next page starts
    more: bool  # the page was full: read on
    # Replies in `frames` no socket has sent yet: sending them records `shown_at` (see
    # `mark_shown`), which is what spares the visitor the e-mail copy (`fallback`).
    unshown: frozenset[int] = frozenset()


def _hidden(_email: str | None) -> str | None:
    return None


async def messages_after(
    session: AsyncSession,
    visitor_id: str,
    after: int,
    *,
    limit: int | None = None,
    public_name: Callable[[str | None], str | None] = _hidden,
) -> Page:
    """The visitor's message frames after id `after`, in id order, one page at a time.

    An agent's reply carries `public_name(agent email)` as its author name (the policy's
    `[public_names]`); never the internal display name.
    """
    limit = limit or PAGE
    rows = (
        await session.execute(
            select(Message, Agent.email, Conversation.csat)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .outerjoin(Agent, Agent.id == Message.author_agent_id)
            .where(
                Message.conversation_id.in_(_conversations_of(visitor_id)),
                Message.channel == "webchat",
                Message.direction.in_(("in", "out")),
                Message.id > after,
            )
            .order_by(Message.id)
            .limit(limit)
        )
    ).all()
    last = rows[-1][0].id if rows else after
    mine = [(m, public_name(email)) for m, email, _ in rows if _belongs(m, visitor_id)]
    scores = {m.id: csat for m, _, csat in rows}
    atts: dict[int, list[dict[str, Any]]] = {}
    if mine:
        for a in await session.scalars(
            select(Attachment)
            .where(Attachment.message_id.in_([m.id for m, _ in mine]))
            .order_by(Attachment.id)
        ):
            atts.setdefault(a.message_id, []).append(
                {"kind": a.kind, "url": a.url, "mime": a.mime, "size": a.size, "name": a.name}
            )
    frames = [message_frame(m, name, atts.get(m.id, []), scores.get(m.id)) for m, name in mine]
    unshown = frozenset(
        m.id for m, _ in mine if m.direction == "out" and SHOWN not in (m.channel_meta or {})
    )
    return Page(frames, last, more=len(rows) == limit, unshown=unshown)


async def mark_shown(session: AsyncSession, message_ids: list[int], now: datetime) -> int:
    """Record that a socket sent these replies (the first time only); returns how many."""
    if not message_ids:
        return 0
    stmt = select(Message).where(Message.id.in_(message_ids)).order_by(Message.id)
    # channel_meta is rewritten whole: lock, so the fallback sweep (which skips locked rows)
    # and we never lose each other's keys.
    stmt = locked(session, stmt)
    marked = 0
    for msg in await session.scalars(stmt):
        meta = msg.channel_meta or {}
        if SHOWN not in meta:
            msg.channel_meta = {**meta, SHOWN: now.isoformat()}
            marked += 1
    return marked


def message_frame(
    msg: Message,
    agent_name: str | None,
    attachments: list[dict[str, Any]],
    csat: int | None = None,
) -> dict[str, Any]:
    if msg.direction == "in":
        author: dict[str, Any] = {"type": "visitor", "name": None}
    elif msg.author_agent_id is not None:
        author = {"type": "agent", "name": agent_name}
    else:
        author = {"type": "system", "name": None}  # automatic acknowledgements
    frame: dict[str, Any] = {
        "type": "message",
        "id": msg.id,
        "conversation_id": msg.conversation_id,
        "direction": msg.direction,
        "kind": msg.kind,
        "text": msg.text,
        "created_at": msg.created_at.isoformat(),
        "author": author,
        "attachments": attachments,
    }
    if msg.kind == "csat":
        # The rating request: the widget shows five buttons, or the score once rated.
        frame["rated"] = csat
    client_id = (msg.channel_meta or {}).get("client_id")
    if msg.direction == "in" and client_id:
        # Lets another tab, or this one before its ack arrives, match its own message.
        frame["client_id"] = client_id
    return frame


async def owns_outbound(session: AsyncSession, visitor_id: str, message_id: int) -> Message | None:
    """The reply `message_id` if it was addressed to this visitor (for read receipts)."""
    msg = await session.get(Message, message_id)
    if msg is None or msg.channel != "webchat" or msg.direction != "out":
        return None
    return msg if _belongs(msg, visitor_id) else None


async def status_frame(session: AsyncSession, rt: Runtime, visitor_id: str) -> dict[str, Any]:
    """Where the visitor's latest conversation stands: queued (with the expected wait),
    assigned (to whom) or resolved; `none` before the first message."""
    conv = await latest_conversation(session, visitor_id)
    if conv is None:
        return {"type": "status", "state": "none", "conversation_id": None}
    frame: dict[str, Any] = {"type": "status", "conversation_id": conv.id}
    q = await queue_of(session, conv)
    frame["queue"] = q.name if q else None
    if conv.status in ("resolved", "closed"):
        frame["state"] = "resolved"
    elif conv.assignee_id is not None:
        agent = await session.get(Agent, conv.assignee_id)
        frame["state"] = "assigned"
        # Patients see a public name only where the policy gives one (never "Lucía (bookings)").
        frame["agent"] = rt.policy.public_agent_name(agent.email) if agent else None
    else:
        frame["state"] = "queued"
        if q is not None:
            est = await estimate_wait(session, rt, q, conv.priority, rt.now(), exclude_id=conv.id)
            frame["expected_wait_s"] = est.seconds
            frame["expected_wait_minutes"] = wait.wait_minutes(est)
    return frame


@dataclass
class Cursor:
    """Which messages one socket has sent: a floor plus the ids sent in the last SETTLE_S."""

    floor: int
    recent: dict[int, float] = field(default_factory=dict)

    def fresh(self, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = time.monotonic()
        out = [f for f in frames if f["id"] not in self.recent and f["id"] > self.floor]
        for f in out:
            self.recent[f["id"]] = now
        return out

    def settle(self) -> None:
        """Raise the floor past ids sent long enough ago that nothing below them can still
        be committing."""
        horizon = time.monotonic() - SETTLE_S
        settled = [i for i, t in self.recent.items() if t <= horizon]
        if settled:
            self.floor = max(self.floor, *settled)
            self.recent = {i: t for i, t in self.recent.items() if i > self.floor}

    @property
    def newest(self) -> int:
        return max(self.recent, default=self.floor)
