from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from models import Agent
from models.schemas import AgentCreate, AgentCreated, AgentRead, Page, PresenceUpdate
from router.api.deps import AgentDep, IdPath, ManagerDep, RuntimeDep, SessionDep
from router.errors import Forbidden, NotFound
from router.flows import agents as agent_service

api_router = APIRouter(prefix="/api/v1/agents", tags=["agents"])
# Accounts only an admin may create or revoke: a supervisor must not lock out an admin.
ADMIN_MANAGED = ("admin", "supervisor", "integration")


@api_router.get("", response_model=Page[AgentRead])
async def list_agents(
    _p: AgentDep,
    session: SessionDep,
    sort: Literal["id", "name"] = Query(default="id", description="id (default) or name"),
) -> Page[AgentRead]:
    order = (Agent.name, Agent.id) if sort == "name" else (Agent.id,)
    agents = list(await session.scalars(select(Agent).order_by(*order)))
    loads = await agent_service.open_counts(session)
    return Page(items=[agent_service.read(a, loads.get(a.id, 0)) for a in agents])


@api_router.post("", response_model=AgentCreated, status_code=201)
async def create_agent(body: AgentCreate, p: ManagerDep, session: SessionDep) -> AgentCreated:
    """Create an agent (or an integration account); the token is in this answer only."""
    if p.role != "admin" and body.role in ADMIN_MANAGED:
        raise Forbidden(f"only an admin may create {body.role} accounts")
    agent, token = await agent_service.create(session, body)
    return AgentCreated(**agent_service.read(agent, 0).model_dump(), token=token)


@api_router.get("/me", response_model=AgentRead)
async def me(p: AgentDep, session: SessionDep) -> AgentRead:
    if p.agent_id is None:
        raise NotFound("the bootstrap admin token is not an agent")
    agent = await session.get(Agent, p.agent_id)
    assert agent is not None
    loads = await agent_service.open_counts(session)
    return agent_service.read(agent, loads.get(agent.id, 0))


@api_router.put("/{agent_id}/presence", response_model=AgentRead)
async def set_presence(
    agent_id: IdPath, body: PresenceUpdate, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> AgentRead:
    """Agents set their own presence; supervisors anyone's. Going online pulls waiting work."""
    if agent_id != p.agent_id and not p.is_manager:
        raise Forbidden("you may only change your own presence")
    agent = await agent_service.set_presence(session, rt, agent_id, body.presence)
    loads = await agent_service.open_counts(session)
    return agent_service.read(agent, loads.get(agent.id, 0))


@api_router.delete("/{agent_id}", status_code=204)
async def deactivate(agent_id: IdPath, p: ManagerDep, rt: RuntimeDep, session: SessionDep) -> None:
    """Revoke an agent's token; their open conversations go back to the queue."""
    if agent_id == p.agent_id:
        raise Forbidden("you cannot deactivate yourself")
    target = await session.get(Agent, agent_id)
    if p.role != "admin" and target is not None and target.role in ADMIN_MANAGED:
        raise Forbidden(f"only an admin may deactivate {target.role} accounts")
    await agent_service.deactivate(session, rt, agent_id)
