"""Crisis escalation I/O: watch urgent conversations for a clinician's reply, offer the
unanswered ones to every online clinician, and page the on-call supervisor through a real
channel (the policy's `[[escalation.pages]]`), recording every page with its delivery status.

Decisions come from the pure `crisis` and `assign` modules. Pages are recorded here and sent
by `router.workers.pages`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Agent, Conversation, CrisisWatch, Page
from models.vocab import ACTIVE_STATUSES as ACTIVE
from router.decide import crisis
from router.flows import assignment
from router.repo.access import locked
from router.repo.events import conv_event
from router.repo.queues import queue_of
from router.runtime import Runtime
from router.wake import wake_after_commit

log = logging.getLogger(__name__)


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
    q = await queue_of(session, conv)
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
    await conv_event(
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
        stmt = locked(session, stmt, skip_locked=True)
        watches = list(await session.scalars(stmt))
        for w in watches:
            conv = await session.get(Conversation, w.conversation_id)
            if conv is None:
                w.state = "closed"
                continue
            q = await queue_of(session, conv)
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
                await conv_event(
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
