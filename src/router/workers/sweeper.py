"""Periodic housekeeping: offer waiting work, return an offline agent's conversations after a
grace period, and refresh the gauges that need a query."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy import func, select

from models import Agent, Conversation, OutboxItem, Queue
from router import metrics
from router.decide.assign import is_urgent
from router.flows import assignment
from router.runtime import Runtime
from router.workers.loop import every

log = logging.getLogger(__name__)
OFFLINE_GRACE = timedelta(minutes=5)


class Sweeper:
    def __init__(self, rt: Runtime, *, every_s: float = 15.0) -> None:
        self.rt = rt
        self.every_s = every_s

    async def run_once(self) -> None:
        rt = self.rt
        now = rt.now()
        async with rt.db.session() as session:
            gone = list(
                await session.scalars(
                    select(Conversation)
                    .join(Agent, Agent.id == Conversation.assignee_id)
                    .where(
                        Conversation.status == "open",
                        Agent.presence == "offline",
                        Agent.presence_changed_at <= now - OFFLINE_GRACE,
                    )
                    .limit(500)
                )
            )
            for conv in gone:
                await assignment.unassign(session, conv, now, reason="agent offline")
            # A crisis cannot wait out the grace period: an urgent conversation held by an
            # agent who is not online goes back at once (and is offered again just below,
            # above capacity if need be).
            urgent = list(
                await session.scalars(
                    select(Conversation)
                    .join(Agent, Agent.id == Conversation.assignee_id)
                    .where(
                        Conversation.status == "open",
                        Conversation.priority == "urgent",
                        (Agent.presence != "online") | Agent.active.is_(False),
                    )
                    .limit(500)
                )
            )
            for conv in urgent:
                if is_urgent(conv.tags):
                    await assignment.unassign(
                        session, conv, now, reason="urgent: assignee not online"
                    )
            await assignment.assign_waiting(session, rt, now)
        async with rt.db.session() as session:
            for name, depth in (
                await session.execute(
                    select(Queue.name, func.count(Conversation.id))
                    .outerjoin(
                        Conversation,
                        (Conversation.queue_id == Queue.id)
                        & (Conversation.status == "open")
                        & Conversation.assignee_id.is_(None),
                    )
                    .group_by(Queue.name)
                )
            ).all():
                metrics.QUEUE_DEPTH.labels(name).set(depth)
            backlog = await session.scalar(
                select(func.count())
                .select_from(OutboxItem)
                .where(OutboxItem.status.in_(("pending", "sending")))
            )
            metrics.OUTBOX_BACKLOG.set(backlog or 0)

    async def run(self, stop: asyncio.Event) -> None:
        async def pause(_: None) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)

        await every("sweep", self.run_once, pause, stop)
