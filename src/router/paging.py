"""Crisis escalation I/O: watch urgent conversations for a clinician's reply, offer the
unanswered ones to every online clinician, and page the on-call supervisor through a real
channel (the policy's `[[escalation.pages]]`), recording every page with its delivery status.

Decisions come from the pure `crisis` and `assign` modules. Pages are sent through the channel
registry (`rt.channels`), never a concrete channel, and outside any transaction: a page is
claimed with a lease (SKIP LOCKED on PostgreSQL), sent, then its outcome recorded, like the
outbox.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import DeliveryError
from models import Agent, Conversation, CrisisWatch, Page
from models.messages import DeliveryResult, OutboundMessage
from router import assignment, crisis, flows
from router.db import log_job_failure, wake_after_commit
from router.outbox import backoff_delay, send_once
from router.runtime import Runtime

log = logging.getLogger(__name__)
ACTIVE = ("open", "pending")


async def _online_clinicians(session: AsyncSession, tier: int) -> list[int]:
    loads = await assignment.agent_loads(session, tier)
    return [a.id for a in crisis.clinicians(loads, tier)]


async def on_urgent(session: AsyncSession, rt: Runtime, conv: Conversation, now: datetime) -> None:
    """After routing: a conversation carrying "crisis" or "urgent_medical" is watched for a
    clinician's first reply (once), and paged at once when no clinician is online."""
    if not crisis.is_urgent(conv.tags) or conv.status not in ACTIVE:
        return
    watched = await session.scalar(
        select(CrisisWatch.id).where(CrisisWatch.conversation_id == conv.id)
    )
    if watched is not None:
        return
    esc = rt.policy.escalation
    session.add(
        CrisisWatch(
            conversation_id=conv.id,
            since=now,
            due_at=crisis.watch_due_at(now, esc.unanswered_after),
            state="watching",
            created_at=now,
        )
    )
    q = await flows.queue_of(session, conv)
    online = await _online_clinicians(session, q.tier if q else 2)
    reason = crisis.on_arrival(len(online), page_when_no_clinician=esc.page_when_no_clinician)
    if reason is not None:
        await page(session, rt, conv, reason, now, online_clinicians=0)
    await session.flush()


async def on_clinician_reply(session: AsyncSession, conv: Conversation, now: datetime) -> None:
    """A second-line agent answered: the watch is satisfied (no page if not yet due)."""
    await session.execute(
        update(CrisisWatch)
        .where(
            CrisisWatch.conversation_id == conv.id,
            CrisisWatch.answered_at.is_(None),
        )
        .values(state="answered", answered_at=now)
        .execution_options(synchronize_session=False)
    )


async def page(
    session: AsyncSession,
    rt: Runtime,
    conv: Conversation,
    reason: str,
    now: datetime,
    *,
    online_clinicians: int,
) -> list[Page]:
    """Queue one page per policy target (once per conversation and reason), for the page
    worker to deliver, and record a `supervisor.paged` event."""
    targets = rt.policy.escalation.pages
    link = f"{rt.settings.public_url.rstrip('/')}/api/v1/conversations/{conv.id}"
    subject, text = crisis.page_text(
        conversation_id=conv.id,
        tags=list(conv.tags or ()),
        reason=reason,
        minutes=max(1, rt.policy.escalation.unanswered_after // 60),
        online_clinicians=online_clinicians,
        link=link,
    )
    done = {
        (c, r)
        for c, r in (
            await session.execute(
                select(Page.channel, Page.recipient).where(
                    Page.conversation_id == conv.id, Page.reason == reason
                )
            )
        ).all()
    }
    pages = [
        Page(
            conversation_id=conv.id,
            reason=reason,
            channel=t.channel,
            recipient=t.to,
            subject=subject[:300],
            text=text,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for t in targets
        if (t.channel, t.to) not in done
    ]
    if not targets:
        log.error("crisis page wanted but the policy has no [[escalation.pages]] target")
    if not pages and done:
        return []
    session.add_all(pages)
    await session.flush()
    await flows.conv_event(
        session,
        "supervisor.paged",
        conv,
        tier=2,
        data={
            "reason": reason,
            "pages": [{"id": p.id, "channel": p.channel, "to": p.recipient} for p in pages],
            "error": None if targets else "no page target in the policy",
        },
    )
    wake_after_commit(session, "outbox")  # the page worker waits with the outbox worker
    return pages


async def escalate_due(rt: Runtime, *, batch: int = 50) -> int:
    """Escalate due, unanswered watches (one transaction); returns how many were handled."""
    now = rt.now()
    async with rt.db.session() as session:
        stmt = (
            select(CrisisWatch)
            .where(CrisisWatch.state == "watching", CrisisWatch.due_at <= now)
            .order_by(CrisisWatch.due_at)
            .limit(batch)
        )
        if rt.db.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        watches = list(await session.scalars(stmt))
        for w in watches:
            conv = await session.get(Conversation, w.conversation_id)
            if conv is None:
                w.state = "closed"
                continue
            q = await flows.queue_of(session, conv)
            tier = q.tier if q else 2
            loads = await assignment.agent_loads(session, tier)
            snap = crisis.WatchSnapshot(
                due_at=w.due_at,
                state=w.state,
                conversation_open=conv.status in ACTIVE,
                tags=frozenset(conv.tags or ()),
            )
            esc = crisis.on_due(snap, loads, tier, now)
            if esc is None:
                w.state = "closed"
                continue
            for agent_id in esc.offer_to:
                await flows.conv_event(
                    session,
                    "crisis.offered",
                    conv,
                    tier=2,
                    data={
                        "to_agent_id": agent_id,
                        "reason": "no clinician reply within "
                        f"{rt.policy.escalation.unanswered_after // 60} min",
                        "assignee_id": conv.assignee_id,
                    },
                )
            await _reassign_if_held_by_absent(session, rt, conv, now)
            if esc.page is not None:
                await page(session, rt, conv, esc.page, now, online_clinicians=len(esc.offer_to))
            w.state = "escalated"
            w.escalated_at = now
        return len(watches)


async def _reassign_if_held_by_absent(
    session: AsyncSession, rt: Runtime, conv: Conversation, now: datetime
) -> None:
    if conv.assignee_id is not None:
        holder = await session.get(Agent, conv.assignee_id)
        if holder is not None and holder.active and holder.presence == "online":
            return
        await assignment.unassign(session, conv, now, reason="urgent: assignee not online")
    await assignment.try_assign(session, rt, conv, now)


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
            if rt.db.dialect == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
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
        while not stop.is_set():
            try:
                n = await self.run_once()
            except Exception as exc:
                log_job_failure(log, "page worker", exc)
                n = 0
            if n < self.batch:
                await self.rt.outbox_wake.wait(poll)

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
                await flows.conv_event(session, event, conv, tier=2, data=data)
