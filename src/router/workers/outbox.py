"""Outbox worker: deliver queued replies through their channel, at least once, never lost.

Claiming marks items `sending` with a lease (`next_attempt_at`) in its own short
transaction; on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so concurrent workers on any
number of instances never take the same item. The outcome is written only if our claim still
holds (same `attempts`), so a worker that outlived its lease cannot overwrite a newer attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelAdapter, DeliveryError
from models import Attachment, ContactIdentity, Conversation, Message, OutboxItem
from models.messages import IDENTITY_KIND, AttachmentRef, DeliveryResult, OutboundMessage
from router import metrics
from router.db import log_job_failure
from router.group import ReadAhead
from router.repo import batch
from router.repo.access import locked
from router.repo.events import conv_event
from router.runtime import Runtime
from router.wake import wake_after_commit

log = logging.getLogger(__name__)


async def send_once(
    adapter: ChannelAdapter, out: OutboundMessage, deadline_s: float
) -> tuple[DeliveryResult | None, DeliveryError | None]:
    """One send under an overall deadline (an adapter's own timeouts count per step); every
    failure comes back as a DeliveryError, since an adapter bug must not kill a worker."""
    try:
        async with asyncio.timeout(deadline_s):
            return await adapter.send(out), None
    except DeliveryError as exc:
        return None, exc
    except TimeoutError:
        return None, DeliveryError(f"no answer within {deadline_s:.0f} s", retryable=True)
    except Exception as exc:
        log.exception("channel send crashed", extra={"channel": out.channel})
        return None, DeliveryError(f"unexpected {type(exc).__name__}", retryable=True)


def backoff_delay(
    attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential back-off with "equal jitter": half fixed, half random, capped.

    The fixed half guarantees progress between tries; the random half spreads a burst of
    failures (a channel outage) so retries don't arrive in lockstep.
    """
    exp = min(cap, base * (2.0 ** max(0, attempt - 1)))
    return float(exp / 2 + rand() * exp / 2)


@dataclass(frozen=True)
class Claimed:
    id: int
    attempts: int
    message_id: int
    conversation_id: int
    channel: str
    # What to send, read in the claim's transaction (None: the message no longer exists).
    out: OutboundMessage | None = None


class OutboxWorker:
    """Claims due items and delivers each as its own task, up to `max_inflight` at once: a
    channel that hangs holds only its own sends (until the send deadline), never the rest."""

    def __init__(self, rt: Runtime, *, batch: int = 20, max_inflight: int = 100) -> None:
        self.rt = rt
        self.batch = batch
        self.max_inflight = max_inflight
        # Under the lease, so a send that outlives it is cut and retried, not sent twice by
        # another worker that took the expired lease.
        self.send_deadline_s = rt.settings.outbox_lease_s * 0.8

    async def claim(self, limit: int | None = None) -> list[Claimed]:
        rt = self.rt
        now = rt.now()
        lease = timedelta(seconds=rt.settings.outbox_lease_s)
        async with rt.db.session() as session:
            stmt = (
                select(OutboxItem)
                .where(
                    OutboxItem.status.in_(("pending", "sending")),
                    OutboxItem.next_attempt_at <= now,
                )
                .order_by(OutboxItem.next_attempt_at, OutboxItem.id)
                .limit(limit or self.batch)
            )
            stmt = locked(session, stmt, skip_locked=True)
            items = list(await session.scalars(stmt))
            # The messages to send, read here for the whole batch (two statements), not in a
            # unit of work per delivery.
            outs = await _outbound(session, [i.message_id for i in items])
            claimed = []
            for item in items:
                item.status = "sending"
                item.attempts += 1
                item.next_attempt_at = now + lease
                claimed.append(
                    Claimed(
                        item.id,
                        item.attempts,
                        item.message_id,
                        item.conversation_id,
                        item.channel,
                        outs.get(item.message_id),
                    )
                )
        return claimed

    async def run_once(self) -> int:
        """Claim a batch and deliver it concurrently; returns how many were attempted."""
        claimed = await self.claim()
        if claimed:
            await asyncio.gather(*(self._deliver(c) for c in claimed))
        return len(claimed)

    async def run(self, stop: asyncio.Event) -> None:
        inflight: set[asyncio.Task[None]] = set()
        poll = self.rt.settings.worker_poll_s
        try:
            while not stop.is_set():
                free = self.max_inflight - len(inflight)
                if free <= 0:
                    await asyncio.wait(inflight, timeout=poll, return_when=FIRST_COMPLETED)
                    continue
                limit = min(self.batch, free)
                try:
                    claimed = await self.claim(limit)
                except Exception as exc:
                    log_job_failure(log, "outbox batch", exc)
                    claimed = []
                for c in claimed:
                    task = asyncio.create_task(self._deliver_logged(c))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                if len(claimed) < limit:  # nothing more due now
                    await self.rt.outbox_wake.wait(poll)
        finally:
            # Shutdown: unfinished sends keep their lease and are retried after it.
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)

    async def _deliver_logged(self, c: Claimed) -> None:
        try:
            await self._deliver(c)
        except Exception as exc:  # e.g. the database went away while recording
            log_job_failure(log, "outbox delivery", exc)

    async def _deliver(self, c: Claimed) -> None:
        out = c.out
        adapter = self.rt.channels.get(c.channel)
        result: DeliveryResult | None = None
        error: DeliveryError | None = None
        if out is None:
            error = DeliveryError("message no longer exists", retryable=False)
        elif adapter is None:
            error = DeliveryError(f"channel {c.channel} is not configured", retryable=False)
        else:
            result, error = await send_once(adapter, out, self.send_deadline_s)
        await self._record(c, result, error)

    async def _record(
        self, c: Claimed, result: DeliveryResult | None, error: DeliveryError | None
    ) -> None:
        # Outcomes that arrive together share a transaction (router.group), as inbound
        # deliveries do: each acknowledgement sent used to pay a unit of work of its own.
        await self.rt.group.submit(
            lambda session: self._record_in(session, c, result, error),
            key=f"outbox:{c.id}",
            ahead=ReadAhead(_read_records, c),
        )

    async def _record_in(
        self,
        session: AsyncSession,
        c: Claimed,
        result: DeliveryResult | None,
        error: DeliveryError | None,
    ) -> None:
        rt = self.rt
        now = rt.now()
        snap = batch.active(session)
        item: OutboxItem | None
        if snap is not None and c.id in snap.outbox:
            # Read ahead for the batch (with its message and conversation).
            item = snap.outbox[c.id]
            if item is not None and (item.status != "sending" or item.attempts != c.attempts):
                item = None
        else:
            item = await session.scalar(
                select(OutboxItem).where(
                    OutboxItem.id == c.id,
                    OutboxItem.status == "sending",
                    OutboxItem.attempts == c.attempts,
                )
            )
        if item is None:
            log.warning("outbox claim lost before recording", extra={"outbox_id": c.id})
            return
        msg = await session.get(Message, c.message_id)
        conv = await session.get(Conversation, c.conversation_id)
        if result is not None:
            item.status = "delivered"
            item.delivered_at = now
            item.last_error = None
            if msg is not None:
                msg.delivery_status = result.status
                msg.sent_at = now
                if result.external_id and msg.external_id is None:
                    msg.external_id = result.external_id
                if result.meta:
                    msg.channel_meta = {**(msg.channel_meta or {}), **result.meta}
            metrics.OUTBOX_RESULTS.labels(c.channel, "delivered").inc()
            event, data = (
                "message.delivered",
                {"message_id": c.message_id, "channel": c.channel},
            )
        else:
            assert error is not None
            item.last_error = error.reason[:1000]
            if error.retryable and c.attempts < rt.settings.outbox_max_attempts:
                delay = backoff_delay(
                    c.attempts,
                    base=rt.settings.outbox_backoff_base_s,
                    cap=rt.settings.outbox_backoff_max_s,
                )
                if error.retry_after is not None:
                    delay = max(delay, error.retry_after)
                item.status = "pending"
                item.next_attempt_at = now + timedelta(seconds=delay)
                metrics.OUTBOX_RESULTS.labels(c.channel, "retry").inc()
                event = "message.retrying"
                data = {
                    "message_id": c.message_id,
                    "channel": c.channel,
                    "attempt": c.attempts,
                    "retry_in_s": round(delay, 1),
                    "error": error.reason,
                }
            else:
                item.status = "dead"
                if msg is not None:
                    msg.delivery_status = "failed"
                if error.unreachable and msg is not None and conv is not None:
                    await _mark_unreachable(session, conv.contact_id, msg)
                metrics.OUTBOX_RESULTS.labels(c.channel, "dead").inc()
                log.warning(
                    "outbound message dead-lettered",
                    extra={"outbox_id": c.id, "channel": c.channel, "attempts": c.attempts},
                )
                event = "message.failed"
                data = {
                    "message_id": c.message_id,
                    "channel": c.channel,
                    "attempts": c.attempts,
                    "error": error.reason,
                }
        if conv is not None:
            await conv_event(session, event, conv, data=data)

    async def backlog(self) -> int:
        async with self.rt.db.session() as session:
            n = await session.scalar(
                select(func.count())
                .select_from(OutboxItem)
                .where(OutboxItem.status.in_(("pending", "sending")))
            )
        return int(n or 0)


async def retry_dead(rt: Runtime, outbox_id: int) -> bool:
    """Put a dead item back in the queue (an operator fixed the cause)."""
    async with rt.db.session() as session:
        res = await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == outbox_id, OutboxItem.status == "dead")
            .values(status="pending", attempts=0, next_attempt_at=rt.now())
        )
        wake_after_commit(session, "outbox")
        return bool(res.rowcount)  # type: ignore[attr-defined]


async def _read_records(session: AsyncSession, claims: list[Any]) -> None:
    """Before a batch of delivery outcomes is recorded: their outbox items, messages and
    conversations, one query each (each `_record_in` then finds them in the session)."""
    items = [c for c in claims if isinstance(c, Claimed)]
    if not items:
        return
    snap = batch.start(session)
    ids = sorted({c.id for c in items})
    found = {
        o.id: o for o in await session.scalars(select(OutboxItem).where(OutboxItem.id.in_(ids)))
    }
    for i in ids:
        snap.outbox[i] = found.get(i)
    msgs = await session.scalars(
        select(Message).where(Message.id.in_(sorted({c.message_id for c in items})))
    )
    convs = await session.scalars(
        select(Conversation).where(Conversation.id.in_(sorted({c.conversation_id for c in items})))
    )
    # Strong references: the identity map's are weak, and `session.get` must find them.
    snap.held.extend([*msgs, *convs])


async def _outbound(session: AsyncSession, message_ids: list[int]) -> dict[int, OutboundMessage]:
    """What each message sends (its recipient, text, attachments), by message id."""
    if not message_ids:
        return {}
    msgs = list(await session.scalars(select(Message).where(Message.id.in_(message_ids))))
    atts: dict[int, list[Attachment]] = {}
    if msgs:
        for a in await session.scalars(
            select(Attachment).where(Attachment.message_id.in_(message_ids)).order_by(Attachment.id)
        ):
            atts.setdefault(a.message_id, []).append(a)
    found: dict[int, OutboundMessage] = {}
    for msg in msgs:
        meta = msg.channel_meta or {}
        found[msg.id] = OutboundMessage(
            channel=msg.channel,
            message_id=msg.id,
            conversation_id=msg.conversation_id,
            recipient=str(meta.get("recipient", "")),
            text=msg.text,
            kind="reply" if msg.kind == "text" else msg.kind,
            attachments=tuple(
                AttachmentRef(kind=a.kind, url=a.url, mime=a.mime, size=a.size, name=a.name)
                for a in atts.get(msg.id, ())
            ),
            meta={k: v for k, v in meta.items() if k != "recipient"},
        )
    return found


async def _mark_unreachable(session: AsyncSession, contact_id: int, msg: Message) -> None:
    recipient = (msg.channel_meta or {}).get("recipient")
    kind = IDENTITY_KIND.get(msg.channel)
    if recipient is None or kind is None:
        return
    await session.execute(
        update(ContactIdentity)
        .where(
            ContactIdentity.contact_id == contact_id,
            ContactIdentity.kind == kind,
            ContactIdentity.value == str(recipient),
        )
        .values(unreachable=True)
    )
