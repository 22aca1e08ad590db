"""Fires due SLA timers (`router.flows.sla.fire`), exactly once across instances."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import func, select

from models import Conversation, SlaTimer
from router.flows.sla import fire
from router.repo.access import is_postgres, locked
from router.runtime import Runtime
from router.workers.loop import every

log = logging.getLogger(__name__)


class SlaScheduler:
    """Fires due timers. Each batch is one transaction. On PostgreSQL it claims the
    conversations of due timers with FOR UPDATE SKIP LOCKED, then locks their timers: the
    lock order of every writer of timers (see `_rows`). So with N instances and concurrent
    requests every warning/breach fires exactly once, and nobody deadlocks; a conversation
    that is busy is skipped (whoever holds it fires its due timers, or the next poll does).
    Overdue timers (after a restart) are simply due: they fire on the first poll."""

    def __init__(self, rt: Runtime, *, batch: int = 200) -> None:
        self.rt = rt
        self.batch = batch

    async def run_once(self) -> int:
        """Fire the due timers of one batch; returns how many timer rows were evaluated."""
        rt = self.rt
        now = rt.now()
        due = (
            select(SlaTimer.conversation_id)
            .where(SlaTimer.next_fire_at <= now)
            .order_by(SlaTimer.next_fire_at)
            .limit(self.batch)
        )
        async with rt.db.session() as session:
            if is_postgres(session):
                due = due.join(Conversation, Conversation.id == SlaTimer.conversation_id)
                due = due.with_for_update(of=Conversation, skip_locked=True)
            conv_ids = set(await session.scalars(due))
            if not conv_ids:
                return 0
            # A fresh statement (a fresh snapshot): a timer fired by whoever held its
            # conversation just before we claimed it is read as fired, not fired again.
            stmt = (
                select(SlaTimer)
                .where(SlaTimer.conversation_id.in_(conv_ids), SlaTimer.next_fire_at <= now)
                .order_by(SlaTimer.next_fire_at)
            )
            stmt = locked(session, stmt)
            rows = list(await session.scalars(stmt))
            for row in rows:
                await fire(session, rt, row, now)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        async def pause(n: int | None) -> None:
            if (n or 0) < self.batch:
                await self.rt.sla_wake.wait(await self._idle_for())

        await every("sla scheduler batch", self.run_once, pause, stop)

    async def _idle_for(self) -> float:
        """Sleep until the next timer is due, at most one poll interval: other instances or
        new conversations may arm earlier timers. (Commits do not wake the scheduler: a new
        timer is due minutes ahead, and waking on every commit cost two transactions each.)"""
        poll = self.rt.settings.worker_poll_s
        try:
            async with self.rt.db.session() as session:
                nxt = await session.scalar(select(func.min(SlaTimer.next_fire_at)))
        except Exception:
            return poll
        if nxt is None:
            return poll
        # A floor, so rows locked by another instance never turn this into a busy loop.
        return float(max(0.02, min(poll, (nxt - self.rt.now()).total_seconds())))
