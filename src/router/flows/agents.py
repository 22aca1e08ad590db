"""Agent accounts and presence."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Agent, Conversation
from models.schemas import ROLE_TIERS, AgentCreate, AgentRead
from models.vocab import ACTIVE_STATUSES
from router.auth import hash_token, new_token
from router.decide.assign import is_urgent
from router.errors import NotFound
from router.flows import assignment
from router.repo import events
from router.runtime import Runtime


def read(a: Agent, open_count: int) -> AgentRead:
    return AgentRead(
        id=a.id,
        name=a.name,
        role=a.role,
        email=a.email,
        tier=a.tier,
        languages=list(a.languages or []),
        skills=list(a.skills or []),
        capacity=a.capacity,
        presence=a.presence,
        presence_changed_at=a.presence_changed_at,
        active=a.active,
        open_conversations=open_count,
    )


async def open_counts(session: AsyncSession) -> dict[int, int]:
    rows = await session.execute(
        select(Conversation.assignee_id, func.count())
        .where(Conversation.status.in_(ACTIVE_STATUSES), Conversation.assignee_id.is_not(None))
        .group_by(Conversation.assignee_id)
    )
    return {int(a): int(n) for a, n in rows.all() if a is not None}


def default_tier(role: str) -> int | None:
    return ROLE_TIERS.get(role)


async def create(session: AsyncSession, body: AgentCreate) -> tuple[Agent, str]:
    token = new_token()
    agent = Agent(
        name=body.name,
        email=body.email,
        role=body.role,
        tier=body.tier if body.tier is not None else default_tier(body.role),
        languages=[lang.lower() for lang in body.languages],
        skills=list(body.skills),
        capacity=body.capacity if body.role != "integration" else 0,
        presence="offline",
        token_hash=hash_token(token),
        active=True,
        settings={},
    )
    session.add(agent)
    await session.flush()
    await events.record(
        session, "agent.created", agent_id=agent.id, data={"role": agent.role, "tier": agent.tier}
    )
    return agent, token


async def set_presence(session: AsyncSession, rt: Runtime, agent_id: int, presence: str) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None or not agent.active:
        raise NotFound(f"agent {agent_id} not found")
    now = rt.now()
    if agent.presence != presence:
        agent.presence = presence
        agent.presence_changed_at = now
        await session.flush()
        await events.record(
            session, "agent.presence", agent_id=agent.id, data={"presence": presence}
        )
        if presence == "online":
            await assignment.assign_waiting(session, rt, now)
        else:
            await _release_urgent(session, rt, agent.id, now)
    return agent


async def _release_urgent(session: AsyncSession, rt: Runtime, agent_id: int, now: datetime) -> None:
    """A crisis does not wait out the offline grace period: the urgent conversations of an
    agent who leaves go to another clinician now (above capacity if need be)."""
    held = await session.scalars(
        select(Conversation).where(
            Conversation.assignee_id == agent_id,
            Conversation.status == "open",
            Conversation.priority == "urgent",
        )
    )
    for conv in [c for c in held if is_urgent(c.tags)]:
        await assignment.unassign(session, conv, now, reason="urgent: assignee not online")
        await assignment.try_assign(session, rt, conv, now)


async def deactivate(session: AsyncSession, rt: Runtime, agent_id: int) -> None:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found")
    now = rt.now()
    agent.active = False
    agent.presence = "offline"
    agent.presence_changed_at = now
    # Rotate the hash so the old token can never match again, even if reactivated.
    agent.token_hash = hash_token(new_token())
    held = await session.scalars(
        select(Conversation).where(
            Conversation.assignee_id == agent_id, Conversation.status.in_(ACTIVE_STATUSES)
        )
    )
    for conv in list(held):
        await assignment.unassign(session, conv, now, reason="agent deactivated")
    await events.record(session, "agent.deactivated", agent_id=agent_id)
    await assignment.assign_waiting(session, rt, now)
