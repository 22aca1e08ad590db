"""Delivers crisis pages through the channel registry (`rt.channels`), never a concrete
channel, and outside any transaction: a page is claimed with a lease (SKIP LOCKED on
PostgreSQL), sent, then its outcome recorded, like the outbox. Each round first escalates
the due crisis watches (`router.flows.paging.escalate_due`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from channels.base import DeliveryError
from models import Conversation, Page
from models.messages import DeliveryResult, OutboundMessage
from router.db import log_job_failure
from router.flows.paging import escalate_due
from router.repo.access import locked
from router.repo.events import conv_event
from router.runtime import Runtime
from router.workers.loop import every
from router.workers.outbox import backoff_delay, send_once

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Claimed:
    id: int
    attempts: int
    conversation_id: int
    channel: str
    recipient: str
    subject: str
    text: str


class PageWorker:
    """Escalates due crisis watches and delivers pages through the channel registry."""

    def __init__(self, rt: Runtime, *, batch: int = 20) -> None:
        self.rt = rt
        self.batch = batch
        self.send_deadline_s = rt.settings.outbox_lease_s * 0.8

    async def claim(self) -> list[_Claimed]:
        rt = self.rt
        now = rt.now()
        async with rt.db.session() as session:
            stmt = (
                select(Page)
                .where(Page.status.in_(("pending", "sending")), Page.next_attempt_at <= now)
                .order_by(Page.next_attempt_at, Page.id)
                .limit(self.batch)
            )
            stmt = locked(session, stmt, skip_locked=True)
            out = []
            for p in await session.scalars(stmt):
                p.status = "sending"
                p.attempts += 1
                p.next_attempt_at = now + timedelta(seconds=rt.settings.outbox_lease_s)
                out.append(
                    _Claimed(
                        p.id,
                        p.attempts,
                        p.conversation_id,
                        p.channel,
                        p.recipient,
                        p.subject,
                        p.text,
                    )
                )
            return out

    async def run_once(self) -> int:
        """Escalate due watches, then deliver due pages; returns how many pages were tried."""
        await escalate_due(self.rt)
        claimed = await self.claim()
        if claimed:
            await asyncio.gather(*(self._deliver(c) for c in claimed))
        return len(claimed)

    async def run(self, stop: asyncio.Event) -> None:
        poll = self.rt.settings.worker_poll_s

        async def pause(n: int | None) -> None:
            if (n or 0) < self.batch:
                await self.rt.outbox_wake.wait(poll)

        await every("page worker", self.run_once, pause, stop)

    async def _deliver(self, c: _Claimed) -> None:
        adapter = self.rt.channels.get(c.channel)
        result: DeliveryResult | None = None
        error: DeliveryError | None = None
        if adapter is None:
            error = DeliveryError(f"channel {c.channel} is not configured", retryable=False)
        else:
            out = OutboundMessage(
                channel=c.channel,  # validated by the policy: email or telegram
                # Negative: never the id of a message, so adapter state keyed by message id
                # (Telegram's resume-mid-split progress, e-mail Message-IDs) stays apart.
                message_id=-c.id,
                conversation_id=c.conversation_id,
                recipient=c.recipient,
                text=c.text,
                kind="page",
                subject=c.subject,
            )
            result, error = await send_once(adapter, out, self.send_deadline_s)
        try:
            await self._record(c, result, error)
        except Exception as exc:
            log_job_failure(log, "page record", exc)

    async def _record(
        self, c: _Claimed, result: DeliveryResult | None, error: DeliveryError | None
    ) -> None:
        rt = self.rt
        now = rt.now()
        async with rt.db.session() as session:
            p = await session.scalar(
                select(Page).where(
                    Page.id == c.id, Page.status == "sending", Page.attempts == c.attempts
                )
            )
            if p is None:
                return  # our lease expired and another worker took it
            conv = await session.get(Conversation, c.conversation_id)
            data: dict[str, object] = {"page_id": p.id, "channel": p.channel, "reason": p.reason}
            if result is not None:
                p.status, p.delivered_at, p.last_error = "delivered", now, None
                p.external_id = result.external_id
                event = "page.delivered"
            else:
                assert error is not None
                p.last_error = error.reason[:1000]
                if error.retryable and c.attempts < rt.settings.outbox_max_attempts:
                    p.status = "pending"
                    delay = backoff_delay(
                        c.attempts,
                        base=rt.settings.outbox_backoff_base_s,
                        cap=rt.settings.outbox_backoff_max_s,
                    )
                    p.next_attempt_at = now + timedelta(seconds=max(delay, error.retry_after or 0))
                    event = "page.retrying"
                else:
                    p.status = "failed"
                    # Loud: a page that cannot go out is a crisis nobody may be looking at.
                    log.error(
                        "crisis page failed",
                        extra={"page_id": p.id, "channel": p.channel, "error": error.reason},
                    )
                    event = "page.failed"
                data["error"] = error.reason
            if conv is not None:
                await conv_event(session, event, conv, tier=2, data=data)
