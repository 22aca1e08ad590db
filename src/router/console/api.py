"""Read models the console needs and the agent API lacked, under `/api/v1` for every client:
a conversation's activity, open crises, the supervisor's wallboard, and invitations."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import func, select

from models import Agent, Assignment, CallbackRequest, Conversation, Event, Queue
from models.schemas import AgentRead, ConversationRead, EventRead, QueueRead
from router.api.deps import AgentDep, IdPath, ManagerDep, RuntimeDep, SessionDep
from router.api.routes import agents as agents_routes
from router.api.routes import queues as queues_routes
from router.api.routes.callbacks import CallbackRead
from router.api.routes.callbacks import _read as callback_read
from router.auth import Principal
from router.console import auth
from router.errors import Forbidden, NotFound
from router.read import conversations as reads
from router.repo import access
from router.repo.events import write_pending
from router.runtime import Runtime

api_router = APIRouter(prefix="/api/v1", tags=["console"])
CRISIS_TAGS = ("crisis", "urgent_medical")


class ActivityRead(BaseModel):
    """Everything that happened to a conversation besides its messages."""

    events: list[EventRead]
    callbacks: list[CallbackRead]


class CrisisRead(BaseModel):
    conversation: ConversationRead
    arrived_at: datetime
    # Someone took it: claimed or assigned by a person (not only by routing), or replied to.
    taken: bool
    holder_id: int | None
    holder_name: str | None


class WallboardRead(BaseModel):
    generated_at: datetime
    queues: list[QueueRead]
    agents: list[AgentRead]
    crises: list[CrisisRead]
    recent_breaches: list[EventRead]


class InvitationRead(BaseModel):
    agent_id: int
    url: str
    expires_at: datetime


def _event(ev: Event) -> EventRead:
    return EventRead.model_validate(ev, from_attributes=True)


@api_router.get("/conversations/{conversation_id}/activity", response_model=ActivityRead)
async def conversation_activity(
    conversation_id: IdPath, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> ActivityRead:
    """The conversation's events (routed, assigned, escalated, transferred, SLA warnings and
    breaches, …, with their reasons) and callback requests, oldest first. 404 for a
    conversation the caller may not read, as everywhere."""
    conv = await access.get_conversation(session, p, conversation_id)
    await write_pending(session)  # this transaction's own events too
    events = await session.scalars(
        select(Event)
        .where(Event.conversation_id == conv.id, Event.tier <= p.max_tier)
        .order_by(Event.id)
        .limit(1000)
    )
    qname = await session.scalar(select(Queue.name).where(Queue.id == conv.queue_id))
    cbs = await session.scalars(
        select(CallbackRequest)
        .where(CallbackRequest.conversation_id == conv.id)
        .order_by(CallbackRequest.id)
    )
    now = rt.now()
    return ActivityRead(
        events=[_event(e) for e in events], callbacks=[callback_read(c, qname, now) for c in cbs]
    )


async def open_crises(session: SessionDep, rt: Runtime, p: Principal) -> list[CrisisRead]:
    convs: dict[int, Conversation] = {}
    for tag in CRISIS_TAGS:
        found, _ = await reads.list_conversations(
            session,
            p,
            status="open,pending",
            queue=None,
            assignee=None,
            priority=None,
            channel=None,
            contact_id=None,
            tag=tag,
            cursor=None,
            limit=200,
        )
        convs.update({c.id: c for c in found})
    if not convs:
        return []
    ids = list(convs)
    taken_ids = set(
        await session.scalars(
            select(Assignment.conversation_id).where(
                Assignment.conversation_id.in_(ids),
                Assignment.ended_at.is_(None),
                Assignment.assigned_by_id.is_not(None),
            )
        )
    )
    arrived: dict[int, datetime] = {
        cid: at
        for cid, at in (
            await session.execute(
                select(Event.conversation_id, func.min(Event.created_at))
                .where(Event.conversation_id.in_(ids), Event.type == "crisis.detected")
                .group_by(Event.conversation_id)
            )
        ).all()
        if cid is not None
    }
    names: dict[int, str] = {
        aid: name for aid, name in (await session.execute(select(Agent.id, Agent.name))).all()
    }
    views = {r.id: r for r in await reads.conversation_reads(session, rt, list(convs.values()))}
    out = [
        CrisisRead(
            conversation=views[c.id],
            arrived_at=arrived.get(c.id) or c.created_at,
            taken=c.id in taken_ids or c.first_response_at is not None,
            holder_id=c.assignee_id,
            holder_name=names.get(c.assignee_id) if c.assignee_id else None,
        )
        for c in convs.values()
    ]
    return sorted(out, key=lambda x: x.arrived_at)


@api_router.get("/crises", response_model=list[CrisisRead])
async def list_crises(p: AgentDep, rt: RuntimeDep, session: SessionDep) -> list[CrisisRead]:
    """Open crisis and urgent-medical conversations, oldest first, with whether someone took
    each (the console's banner stays until then). Clinicians and supervisors only."""
    if p.max_tier < 2:
        raise Forbidden("crisis alerts are for clinicians and supervisors")
    return await open_crises(session, rt, p)


@api_router.get("/wallboard", response_model=WallboardRead)
async def wallboard(p: ManagerDep, rt: RuntimeDep, session: SessionDep) -> WallboardRead:
    """One read for the supervisor's wall screen: queues (depth, oldest and expected wait,
    online agents, SLA met and breached in 24 h), agents with presence and load, open crises
    with who holds them, and the SLA breaches of the last 24 h (newest first)."""
    now = rt.now()
    queues = await queues_routes.list_queues(p, rt, session)
    agents = await agents_routes.list_agents(p, session)
    breaches = await session.scalars(
        select(Event)
        .where(Event.type == "sla.breached", Event.created_at >= now - timedelta(hours=24))
        .order_by(Event.id.desc())
        .limit(20)
    )
    return WallboardRead(
        generated_at=now,
        queues=queues.items,
        agents=[a for a in agents.items if a.active and a.role != "integration"],
        crises=await open_crises(session, rt, p),
        recent_breaches=[_event(e) for e in breaches],
    )


@api_router.post("/agents/{agent_id}/invitation", response_model=InvitationRead, status_code=201)
async def invite(
    agent_id: IdPath, request: Request, p: ManagerDep, rt: RuntimeDep, session: SessionDep
) -> InvitationRead:
    """A one-time link that sets the agent's console password (earlier links stop working).
    Shown in this answer only."""
    agent = await session.get(Agent, agent_id)
    if agent is None or not agent.active:
        raise NotFound(f"agent {agent_id} not found")
    if p.role != "admin" and agent.role in agents_routes.ADMIN_MANAGED:
        raise Forbidden(f"only an admin may invite {agent.role} accounts")
    token, expires = await auth.create_invitation(
        session,
        agent,
        rt.now(),
        ttl_s=auth.console_settings(request).invitation_ttl_s,
        by_agent_id=p.agent_id,
    )
    return InvitationRead(
        agent_id=agent.id,
        url=auth.invitation_url(rt.settings.public_url, token),
        expires_at=expires,
    )
