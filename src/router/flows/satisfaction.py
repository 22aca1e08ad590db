"""Satisfaction: ask for a 1–5 rating on resolution, and record the answer.

Every channel's `on_resolved` hook calls `ask` with its own channel name (and its own text,
e.g. e-mail's links); only the channel the conversation replies on queues a request, so a
conversation is asked once, on one channel. Every channel's answer (Telegram's button, the
web chat widget, the e-mail link, the app's endpoint) goes through `record`.

The first answer wins: a conversation keeps its first score; a repeat (the same button
pressed twice, a second link clicked, a redelivered webhook) changes nothing and records no
event, so the rating cannot be flipped later by a mail scanner or a replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Conversation, Message
from router.decide import satisfaction
from router.errors import Conflict, InvalidInput
from router.flows.outbound import enqueue_outbound, reply_channel
from router.repo.events import conv_event
from router.runtime import Runtime

CSAT_KIND = "csat"


async def asked_before(session: AsyncSession, conv: Conversation) -> bool:
    """A rating request was ever queued for this conversation (on any channel)."""
    return bool(
        await session.scalar(
            select(exists().where(Message.conversation_id == conv.id, Message.kind == CSAT_KIND))
        )
    )


async def should_ask(session: AsyncSession, rt: Runtime, conv: Conversation) -> bool:
    return satisfaction.should_ask(
        asked_before=await asked_before(session, conv),
        rated=conv.csat is not None,
        tags=conv.tags or (),
        ask_after_crisis=rt.policy.satisfaction.ask_after_crisis,
    )


async def ask(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    channel: str,
    text: str | None = None,
    *,
    meta: dict[str, Any] | None = None,
) -> Message | None:
    """Queue the rating request on `channel` if the conversation replies there, the channel
    is configured and `decide.satisfaction` says to ask; returns it, else None."""
    if channel not in rt.channels:
        return None
    try:
        if await reply_channel(session, conv) != channel:
            return None
        if not await should_ask(session, rt, conv):
            return None
        msg = await enqueue_outbound(
            session,
            rt,
            conv,
            text or satisfaction.text("rate", conv.language),
            kind=CSAT_KIND,
            channel=channel,
            now=rt.now(),
        )
    except Conflict:  # no identity there, or unreachable
        return None
    msg.channel_meta = {**(msg.channel_meta or {}), "purpose": "csat", **(meta or {})}
    await session.flush()
    return msg


@dataclass(frozen=True)
class Rated:
    conversation_id: int
    score: int  # the conversation's score now (the first answer's)
    duplicate: bool  # it was rated already: nothing changed


async def record(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    score: object,
    *,
    channel: str,
    data: dict[str, Any] | None = None,
) -> Rated:
    """Store a 1–5 score (422 otherwise) as `conv.csat` with a `conversation.rated` event.
    First answer wins; a repeat is a no-op reported as `duplicate`."""
    value = satisfaction.valid_score(score)
    if value is None:
        raise InvalidInput("score must be an integer from 1 to 5")
    if conv.csat is not None:
        return Rated(conv.id, conv.csat, duplicate=True)
    # Compare-and-set: two answers at once (two instances, two tabs) store one score.
    result = await session.execute(
        update(Conversation)
        .where(Conversation.id == conv.id, Conversation.csat.is_(None))
        .values(csat=value, updated_at=rt.now())
        .execution_options(synchronize_session=False)
    )
    stored = bool(getattr(result, "rowcount", 0))
    await session.refresh(conv, ["csat", "updated_at"])
    if not stored:
        return Rated(conv.id, int(conv.csat or value), duplicate=True)
    await conv_event(
        session,
        "conversation.rated",
        conv,
        data={"score": value, "channel": channel, **(data or {})},
    )
    return Rated(conv.id, value, duplicate=False)
