"""Console sign-ins for `careline agent create` (an invitation link) and `careline demo`
(a password per demo agent, reset on every run, so re-running reuses the same agents)."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Agent
from models.schemas import AgentCreate
from router.auth import AGENT_ROLES, hash_token, new_token
from router.bootstrap import build_runtime
from router.console import auth
from router.console.settings import get_console_settings
from router.flows import agents
from router.runtime import Runtime
from router.settings import Settings


async def invite(settings: Settings, agent_id: int) -> str | None:
    """An invitation link for a new agent, or None when the account cannot sign in."""
    rt = build_runtime(settings)
    try:
        async with rt.db.session() as session:
            agent = await session.get(Agent, agent_id)
            if agent is None or agent.role not in AGENT_ROLES or not agent.email:
                return None
            token, _ = await auth.create_invitation(
                session, agent, rt.now(), ttl_s=get_console_settings().invitation_ttl_s
            )
            return auth.invitation_url(settings.public_url, token)
    finally:
        await rt.db.dispose()


async def demo_agent(
    session: AsyncSession, rt: Runtime, body: AgentCreate
) -> tuple[Agent, str, str | None]:
    """The demo agent with this e-mail, created once and reused after: a fresh API token and,
    for staff, a fresh console password on every run (both printed, never stored in clear)."""
    agent = None
    if body.email:
        agent = await session.scalar(
            select(Agent)
            .where(func.lower(Agent.email) == body.email.lower(), Agent.active.is_(True))
            .order_by(Agent.id)
        )
    if agent is None:
        agent, token = await agents.create(session, body)
    else:
        token = new_token()
        agent.token_hash = hash_token(token)
    password = None
    if agent.role in AGENT_ROLES:
        agent.presence = "online"
        agent.presence_changed_at = rt.now()
        password = "demo-" + secrets.token_urlsafe(12)
        await auth.set_password(session, agent, password, rt.now())
    await session.flush()
    return agent, token, password
