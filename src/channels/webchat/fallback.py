"""E-mail copies of web chat replies the visitor never saw.

An agent's reply to a visitor who has left waits in the feed and is replayed on their next
connection. If no socket has sent it (`shown_at`, recorded by the socket) within a grace period
(`CARELINE_WEBCHAT_MAIL_AFTER_S`, 120 s), and that very visitor confirmed an e-mail address
by link, one copy goes out through the outbox on
the e-mail channel. Every due reply is marked once (`fallback`: mailed or skipped, and the
copy's `mailed_message_id`), in the same unit of work as the copy, so a reply is never mailed
twice; on PostgreSQL the rows are claimed with FOR UPDATE SKIP LOCKED, so two instances never
take the same reply (SQLite has one writer at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.email.adapter import EmailChannel
from channels.webchat import confirm
from channels.webchat.feed import SHOWN
from models import Contact, ContactIdentity, Conversation, Message
from models.vocab import COPY_OF
from router.db import log_job_failure
from router.errors import Conflict
from router.flows.outbound import enqueue_outbound
from router.repo.access import locked
from router.runtime import Runtime

log = logging.getLogger(__name__)

FALLBACK = "fallback"  # channel_meta key: "mailed", or "skipped:<why>"
MAILED_ID = "mailed_message_id"  # channel_meta key: the e-mail copy's message id
DEFAULT_AFTER_S = 120.0
POLL_S = 30.0
BATCH = 100
# Replies older than this are not mailed any more (the sweeper was down, the e-mail channel
# was configured later): a copy days late helps nobody. It also bounds the scan.
HORIZON = timedelta(days=2)


def grace(rt: Runtime) -> timedelta:
    return timedelta(seconds=float(getattr(rt.settings, "webchat_mail_after_s", DEFAULT_AFTER_S)))


async def verified_email(session: AsyncSession, conv: Conversation, msg: Message) -> str | None:
    """The address the reply's visitor confirmed for this, if it is still reachable.

    Only the visitor's own confirmation counts (`confirm.confirmed_address`): never another
    e-mail of the contact, which may be somebody else's after an agent's merge."""
    visitor = (msg.channel_meta or {}).get("recipient")
    contact = await session.get(Contact, conv.contact_id)
    addr = confirm.confirmed_address(contact, str(visitor)) if visitor else None
    if addr is None:
        return None
    gone = await session.scalar(
        select(ContactIdentity.id).where(
            ContactIdentity.kind == "email",
            ContactIdentity.value == addr,
            ContactIdentity.unreachable.is_(True),
        )
    )
    return None if gone is not None else addr


async def _mail_copy(session: AsyncSession, rt: Runtime, msg: Message, now: datetime) -> str:
    conv = await session.get(Conversation, msg.conversation_id)
    if conv is None:
        return "skipped:no_conversation"
    addr = await verified_email(session, conv, msg)
    if addr is None:
        return "skipped:no_verified_email"
    try:
        copy = await enqueue_outbound(
            session, rt, conv, msg.text, kind="text", channel="email", recipient=addr, now=now
        )
    except Conflict:
        return "skipped:unreachable"
    # A copy: the conversation keeps replying on web chat, not on e-mail.
    copy.channel_meta = {**(copy.channel_meta or {}), COPY_OF: str(msg.id)}
    msg.channel_meta = {**(msg.channel_meta or {}), MAILED_ID: copy.id}
    return "mailed"


async def mail_unseen_replies(rt: Runtime, *, batch: int = BATCH) -> int:
    """Mail one copy of each reply due for it; returns how many copies were enqueued.

    Due: an outbound web chat text, older than the grace period (and not older than the
    horizon), that no socket has shown and that has not been handled yet. Without an e-mail
    channel nothing is due (and nothing is marked, so nothing is lost either)."""
    if not isinstance(rt.channels.get("email"), EmailChannel):
        return 0
    now = rt.now()
    mailed = 0
    async with rt.db.session() as session:
        stmt = (
            select(Message)
            .where(
                Message.channel == "webchat",
                Message.direction == "out",
                Message.kind == "text",
                Message.created_at <= now - grace(rt),
                Message.created_at > now - HORIZON,
                Message.channel_meta[SHOWN].as_string().is_(None),
                Message.channel_meta[FALLBACK].as_string().is_(None),
            )
            .order_by(Message.id)
            .limit(batch)
        )
        # A socket marking one of these as shown holds its row: skip it, it is seen.
        stmt = locked(session, stmt, skip_locked=True)
        for msg in list(await session.scalars(stmt)):
            state = await _mail_copy(session, rt, msg, now)
            msg.channel_meta = {**(msg.channel_meta or {}), FALLBACK: state}
            mailed += state == "mailed"
    return mailed


async def run_fallback(rt: Runtime, stop: asyncio.Event) -> None:
    """The worker loop for the app's lifespan: sweep, then wait `POLL_S` or until `stop`.
    A reply is mailed at most `POLL_S` after its grace period ends, and only once."""
    while not stop.is_set():
        try:
            n = await mail_unseen_replies(rt)
            if n:
                log.info("webchat fallback: %d reply copies mailed", n)
        except Exception as exc:
            log_job_failure(log, "webchat fallback sweep", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)
