"""The inbound pipeline shared by every channel: de-dup → contact → conversation → message →
routing, all inside the caller's transaction, so a webhook answers only once it is durable."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, inspect, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import Attachment, Contact, Conversation, Message, SlaTimer
from models.messages import InboundMessage, Sender
from models.vocab import ACTIVE_STATUSES, SENDER
from router import metrics
from router.errors import Conflict
from router.flows.assignment import read_ahead_loads
from router.flows.contacts import has_conversation, resolve_contact, without_conversations
from router.flows.contacts import read_ahead as read_contacts
from router.flows.route import after_inbound
from router.group import ReadAhead, without_savepoints
from router.repo import batch
from router.repo.access import hold_lock
from router.repo.events import conv_event
from router.runtime import Runtime
from router.wake import after_commit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    conversation_id: int
    message_id: int
    duplicate: bool


async def _existing(session: AsyncSession, channel: str, external_id: str) -> Message | None:
    return await session.scalar(
        select(Message).where(Message.channel == channel, Message.external_id == external_id)
    )


async def ingest(session: AsyncSession, rt: Runtime, msg: InboundMessage) -> IngestResult:
    """Persist one inbound message exactly once.

    The unique `(channel, external_id)` constraint is the arbiter: a copy already stored (or
    being stored by a concurrent delivery) fails our savepoint, and the look-up after it
    answers "duplicate". Nothing is looked up first: a copy is rare, and the look-up was a
    round trip on every message. A race on a brand-new contact's identity also fails the
    savepoint; the retry then finds it.
    """
    started = time.perf_counter()
    snap = batch.active(session)
    key = (msg.channel, msg.external_id)
    if snap is not None and snap.messages.get(key) is not None:
        # Read ahead for the batch (or stored by an earlier unit of it): a copy.
        conv_id, msg_id = snap.messages[key]  # type: ignore[misc]
        _count(session, msg.channel, "duplicate")
        return IngestResult(conv_id, msg_id, duplicate=True)
    if without_savepoints(session):
        # An optimistic batch (router.group): no savepoint of our own. A conflict fails the
        # whole batch, which is then written again with savepoints, and the loop below
        # answers the race.
        result = await _ingest_new(session, rt, msg)
        return _stored(session, msg, result, started)
    for attempt in range(4):
        if attempt:
            found = await _existing(session, msg.channel, msg.external_id)
            if found is not None:
                _count(session, msg.channel, "duplicate")
                return IngestResult(found.conversation_id, found.id, duplicate=True)
        try:
            async with session.begin_nested():
                result = await _ingest_new(session, rt, msg)
        except IntegrityError:
            log.info("ingest race, retrying", extra={"channel": msg.channel})
            batch.drop(session)  # its objects may be expired or gone with the savepoint
            continue
        return _stored(session, msg, result, started)
    raise Conflict("could not store the message after repeated conflicts; retry")


def _stored(
    session: AsyncSession, msg: InboundMessage, result: IngestResult, started: float
) -> IngestResult:
    snap = batch.active(session)
    if snap is not None:
        # A copy later in the same batch is answered "duplicate" without a conflict.
        snap.messages[(msg.channel, msg.external_id)] = (result.conversation_id, result.message_id)
    _count(session, msg.channel, "stored", time.perf_counter() - started)
    return result


def _count(session: AsyncSession, channel: str, outcome: str, seconds: float | None = None) -> None:
    """Count the message once its transaction commits: a batch that fails and is written
    again (router.group) runs its units twice, and a rolled-back one stored nothing."""

    def count() -> None:
        metrics.INGEST_TOTAL.labels(channel, outcome).inc()
        if seconds is not None:
            metrics.INGEST_SECONDS.labels(channel).observe(seconds)

    after_commit(session, count)


async def _ingest_new(session: AsyncSession, rt: Runtime, msg: InboundMessage) -> IngestResult:
    now = rt.now()
    contact = await resolve_contact(
        session, msg.channel, msg.sender, now, erasure_key=rt.settings.erasure_hmac_key()
    )
    conv, how = await _resolve_conversation(session, rt, contact, msg)

    # A call log of an outbound call (agent → customer) is ours, not the customer's message.
    outbound = msg.direction == "out"
    call = msg.call.to_meta() if msg.call is not None else {}
    message = Message(
        # Reserved for the batch (PostgreSQL): no flush is needed for the id, so the batch's
        # messages go out in one INSERT at its commit.
        **_reserved_id(session, "messages"),
        conversation_id=conv.id,
        direction="out" if outbound else "in",
        channel=msg.channel,
        kind=msg.kind,
        external_id=msg.external_id,
        text=msg.text,
        sent_at=msg.sent_at,
        created_at=msg.received_at,
        delivery_status="sent" if outbound else "received",
        # Who wrote it: replies keep going to the identity a conversation has been using.
        channel_meta={**msg.channel_meta, **call, SENDER: msg.sender.external_id},
    )
    session.add(message)
    # The unique (channel, external_id) constraint fires at the next flush, inside our
    # savepoint: here when attachments need the message id, else with the routing's writes
    # (which also set the message's language: one INSERT instead of INSERT + UPDATE).
    if msg.attachments:
        await session.flush()
    for att in msg.attachments:
        session.add(
            Attachment(
                message_id=message.id,
                kind=att.kind,
                url=att.url,
                mime=att.mime,
                size=att.size,
                name=att.name,
                meta=dict(att.meta),
            )
        )

    conv.updated_at = now
    was_pending = conv.status == "pending"
    if outbound:
        conv.last_outbound_at = now
    else:
        conv.last_inbound_at = now
        if conv.waiting_since is None:
            conv.waiting_since = now
        if was_pending:
            conv.status = "open"
    if msg.subject and not conv.subject:
        conv.subject = msg.subject[:300]
    # No flush here: these changes go out with the routing's, in one UPDATE.

    await after_inbound(
        session, rt, conv, contact, message, how=how, was_pending=was_pending, now=now
    )
    return IngestResult(conv.id, message.id, duplicate=False)


def _reserved_id(session: AsyncSession, table: str) -> dict[str, int]:
    rid = batch.take_id(session, table)
    return {} if rid is None else {"id": rid}


async def _resolve_conversation(
    session: AsyncSession, rt: Runtime, contact: Contact, msg: InboundMessage
) -> tuple[Conversation, str]:
    """The thread this message belongs to, and how: "thread", "open", "reopened" or "new"."""
    now = rt.now()
    window = timedelta(seconds=rt.policy.reopen_window_s)

    if msg.thread_refs:
        conv_id = await session.scalar(
            select(Message.conversation_id)
            .where(Message.channel == msg.channel, Message.external_id.in_(msg.thread_refs))
            .order_by(Message.id.desc())
            .limit(1)
        )
        if conv_id is not None:
            conv = await session.get(Conversation, conv_id, with_for_update=True)
            if conv is not None:
                hold_lock(session, conv.id)
            if conv is not None and conv.status in ACTIVE_STATUSES:
                return conv, "thread"
            if conv is not None and conv.status == "resolved" and _within(conv, now, window):
                await _reopen(session, conv, now)
                return conv, "reopened"

    if msg.thread_refs_only or without_conversations(session, contact):
        # A contact created just now has no conversation to continue.
        return await _new_conversation(session, contact, msg, now), "new"

    snap = batch.active(session)
    if snap is not None and contact.id in snap.live:
        # Read ahead (and locked) for the whole batch; a conversation an earlier unit of the
        # batch created or reopened is the same object, so its status is current.
        ahead = snap.live[contact.id]
        if ahead is None:
            return await _new_conversation(session, contact, msg, now), "new"
        state = inspect(ahead)
        if (state.persistent or state.pending) and ahead.contact_id == contact.id:
            hold_lock(session, ahead.id)
            if ahead.status in ACTIVE_STATUSES:
                return ahead, "open"
            if ahead.status == "resolved" and _within(ahead, now, window):
                await _reopen(session, ahead, now)
                return ahead, "reopened"
        # Anything else (closed since, resolved too long ago): ask the database.

    # One look-up for both: the contact's live conversation if any (the newest), else the
    # last one resolved within the reopen window.
    live = Conversation.status.in_(ACTIVE_STATUSES)
    conv = await session.scalar(
        select(Conversation)
        .where(
            Conversation.contact_id == contact.id,
            or_(
                live,
                and_(Conversation.status == "resolved", Conversation.resolved_at >= now - window),
            ),
        )
        .order_by(
            case((live, 0), else_=1),
            Conversation.resolved_at.desc().nulls_last(),  # NULL on live conversations
            Conversation.id.desc(),
        )
        .limit(1)
        # Locked (PostgreSQL) until commit: routing writes queue and priority from this row,
        # which must not overwrite a concurrent SLA escalation with a stale read.
        .with_for_update()
    )
    if conv is not None:
        hold_lock(session, conv.id)  # FOR UPDATE above, on PostgreSQL
    if conv is not None and conv.status != "resolved":
        return conv, "open"
    if conv is not None:
        await _reopen(session, conv, now)
        return conv, "reopened"
    return await _new_conversation(session, contact, msg, now), "new"


async def _new_conversation(
    session: AsyncSession, contact: Contact, msg: InboundMessage, now: datetime
) -> Conversation:
    conv = Conversation(
        **_reserved_id(session, "conversations"),
        contact_id=contact.id,
        channel=msg.channel,
        status="open",
        priority="normal",
        tags=[],
        routing_reasons=[],
        created_at=now,
        updated_at=now,
    )
    session.add(conv)
    if conv.id is None:
        await session.flush()  # its id; with a reserved one, the INSERT waits for the batch's
        # flush and carries routing's choices (no UPDATE after it)
    has_conversation(session, contact)
    snap = batch.active(session)
    if snap is not None:
        # The contact's next message in this batch continues it; it has no timers yet.
        snap.live[contact.id] = conv
        snap.timers[conv.id] = {}
    return conv


@dataclass(frozen=True)
class Ahead:
    """One inbound message of a group-commit batch, for `read_ahead`."""

    rt: Runtime
    channel: str
    sender: Sender
    external_id: str | None = None  # its de-dup key, when known before the unit runs


def ahead(rt: Runtime, channel: str, sender: Sender, external_id: str | None = None) -> ReadAhead:
    """What `GroupCommit.run` reads ahead for a unit that ingests a message from `sender`
    (with `external_id`: whether it is a copy of one already stored)."""
    return ReadAhead(read_ahead, Ahead(rt, channel, sender, external_id))


async def read_ahead(session: AsyncSession, items: Sequence[Any]) -> None:
    """Before a batch's units run: their senders' identities, live conversations (locked, in
    id order, so two batches never deadlock on them) and those conversations' timers, one
    query each for the whole batch (`repo.batch`)."""
    aheads = [i for i in items if isinstance(i, Ahead)]
    if not aheads:
        return
    rt = aheads[0].rt
    snap = batch.start(session)
    keys: list[tuple[str, str]] = sorted(
        {(a.channel, a.external_id) for a in aheads if a.external_id is not None}
        - snap.messages.keys()
    )
    if keys:
        by_channel: dict[str, list[str]] = {}
        for channel, external_id in keys:
            by_channel.setdefault(channel, []).append(external_id)
        for key in keys:
            snap.messages[key] = None
        for ch, ext, conv_id, msg_id in await session.execute(
            select(Message.channel, Message.external_id, Message.conversation_id, Message.id).where(
                or_(
                    *(
                        and_(Message.channel == ch, Message.external_id.in_(exts))
                        for ch, exts in sorted(by_channel.items())
                    )
                )
            )
        ):
            snap.messages[(ch, str(ext))] = (conv_id, msg_id)
    contact_ids = await read_contacts(
        session,
        [(a.channel, a.sender) for a in aheads],
        erasure_key=rt.settings.erasure_hmac_key(),
    )
    wanted = [c for c in contact_ids if c not in snap.live]
    if wanted:
        await _read_live(session, rt, snap, wanted)
    unknown = len(aheads) - len(contact_ids)
    if unknown or any(
        (c := snap.live.get(cid)) is None or c.assignee_id is None for cid in contact_ids
    ):
        # Someone may be assigned or told the wait: the agents' loads, before the units.
        await read_ahead_loads(session)
    fresh = unknown + sum(snap.live.get(c) is None for c in contact_ids)
    if (len(aheads) > 1 or fresh) and not snap.ids:
        # Ids for what the units will create, so none flushes for one: each message and an
        # acknowledgement; a conversation for each sender without a live one (or unknown),
        # a contact for each unknown sender. One statement, for the whole batch; worth it
        # alone too for a new conversation, whose INSERT then carries routing's choices and
        # the acknowledgement's (no UPDATE after it). A lone follow-up writes one UPDATE
        # and one INSERT either way.
        await batch.reserve_ids(
            session,
            {"messages": 2 * len(aheads), "conversations": fresh, "contacts": unknown},
        )


async def _read_live(
    session: AsyncSession, rt: Runtime, snap: batch.Snapshot, wanted: list[int]
) -> None:
    now = rt.now()
    window = timedelta(seconds=rt.policy.reopen_window_s)
    live = Conversation.status.in_(ACTIVE_STATUSES)
    convs = list(
        await session.scalars(
            select(Conversation)
            .where(
                Conversation.contact_id.in_(wanted),
                or_(
                    live,
                    and_(
                        Conversation.status == "resolved", Conversation.resolved_at >= now - window
                    ),
                ),
            )
            .order_by(Conversation.id)
            .with_for_update()
            # Re-read under the lock: rows loaded earlier in this transaction may be stale.
            .execution_options(populate_existing=True)
        )
    )
    best: dict[int, Conversation] = {}
    for conv in convs:
        hold_lock(session, conv.id)
        have = best.get(conv.contact_id)
        if have is None or _continue_rank(conv) < _continue_rank(have):
            best[conv.contact_id] = conv
    for cid in wanted:
        snap.live[cid] = best.get(cid)
    # Every locked conversation is held by `convs` until the batch ends (weak identity map).
    snap.conversations.extend(convs)
    if best:
        ids = sorted(c.id for c in best.values())
        rows = await session.scalars(
            select(SlaTimer)
            .where(SlaTimer.conversation_id.in_(ids))
            .order_by(SlaTimer.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        for cid in ids:
            snap.timers[cid] = {}
        for row in rows:
            snap.timers[row.conversation_id][row.kind] = row


def _continue_rank(conv: Conversation) -> tuple[int, float, int]:
    """The order `_resolve_conversation` picks in: live first, then the latest resolved, then
    the newest."""
    resolved = conv.resolved_at.timestamp() if conv.resolved_at is not None else float("inf")
    return (0 if conv.status in ACTIVE_STATUSES else 1, -resolved, -conv.id)


def _within(conv: Conversation, now: datetime, window: timedelta) -> bool:
    return conv.resolved_at is not None and conv.resolved_at >= now - window


async def _reopen(session: AsyncSession, conv: Conversation, now: datetime) -> None:
    snap = batch.active(session)
    if snap is not None:
        # Which conversation the contact's next message continues is the database's to say.
        snap.live.pop(conv.contact_id, None)
    conv.status = "open"
    conv.resolved_at = None
    conv.updated_at = now
    await conv_event(session, "conversation.reopened", conv)
