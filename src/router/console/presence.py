"""Closing the console counts as away: an online agent whose console tabs all stopped
reporting for longer than the grace period is set away (as if they had clicked it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy import func, select, update

from models import Agent, StaffSession
from router.console.settings import ConsoleSettings, get_console_settings
from router.flows import agents
from router.runtime import Runtime

log = logging.getLogger(__name__)


async def sweep(rt: Runtime, cfg: ConsoleSettings | None = None) -> list[int]:
    """Set away the online agents whose last console heartbeat is older than the grace
    period; returns their ids. Agents who never used the console are left alone."""
    cfg = cfg or get_console_settings()
    now = rt.now()
    cutoff = now - timedelta(seconds=cfg.presence_grace_s)
    async with rt.db.session() as session:
        last = (
            select(StaffSession.agent_id, func.max(StaffSession.heartbeat_at).label("beat"))
            .where(StaffSession.heartbeat_at.is_not(None))
            .group_by(StaffSession.agent_id)
            .subquery()
        )
        ids = list(
            await session.scalars(
                select(Agent.id)
                .join(last, last.c.agent_id == Agent.id)
                .where(Agent.presence == "online", Agent.active.is_(True), last.c.beat < cutoff)
            )
        )
        for agent_id in ids:
            await agents.set_presence(session, rt, agent_id, "away")
        if ids:
            # Forget those heartbeats: an agent who goes online again through the API alone
            # is not set away again by a tab closed long ago.
            await session.execute(
                update(StaffSession).where(StaffSession.agent_id.in_(ids)).values(heartbeat_at=None)
            )
    return ids


async def run(rt: Runtime, stop: asyncio.Event, every_s: float = 15.0) -> None:
    while not stop.is_set():
        try:
            await sweep(rt)
        except Exception:
            log.exception("console presence sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
