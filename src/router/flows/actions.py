"""What agents do to conversations: reply, note, claim, assign, transfer, escalate, change
status. Every action checks the caller's reach, writes, records an event."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from models import Agent, ContactIdentity, Conversation, Message
from models.vocab import PRIORITY_RANK, TEXT_CHANNELS
from router.auth import Principal, can_read_tier
from router.decide import transitions
from router.errors import Conflict, ConversationClosed, Forbidden, InvalidInput
from router.flows import assignment, paging
from router.flows import sla as timers
from router.flows.outbound import enqueue_outbound
from router.flows.route import after_resolved
from router.repo.access import get_conversation
from router.repo.events import conv_event
from router.repo.queues import queue_by_name, queue_of
from router.runtime import Runtime


def _require_agent(p: Principal) -> None:
    if p.max_tier == 0:
        raise Forbidden("this token may not act on conversations")


async def reply(
    session: AsyncSession,
    rt: Runtime,
    p: Principal,
    conv_id: int,
    *,
    text: str,
    internal: bool,
    channel: str | None,
    identity_id: int | None = None,
) -> Message:
    _require_agent(p)
    conv = await get_conversation(session, p, conv_id, for_update=True)
    now = rt.now()
    if conv.status == "closed":
        raise ConversationClosed(f"conversation {conv_id} is closed")
    if internal:
        note = Message(
            conversation_id=conv.id,
            direction="note",
            channel=conv.channel,
            kind="text",
            text=text,
            author_agent_id=p.agent_id,
            created_at=now,
            delivery_status="none",
        )
        session.add(note)
        await session.flush()
        await conv_event(
            session, "note.created", conv, agent_id=p.agent_id, data={"message_id": note.id}
        )
        return note
    recipient = None
    if identity_id is not None:
        ident = await session.get(ContactIdentity, identity_id)
        if ident is None or ident.contact_id != conv.contact_id:
            raise InvalidInput("identity_id is not one of this conversation's contact")
        if ident.kind not in TEXT_CHANNELS or (channel and channel != ident.kind):
            raise InvalidInput(f"cannot reply to a {ident.kind} identity on this channel")
        if ident.unreachable:
            raise Conflict(f"the contact is unreachable on {ident.kind}")
        channel, recipient = ident.kind, ident.value
    msg = await enqueue_outbound(
        session,
        rt,
        conv,
        text,
        author_agent_id=p.agent_id,
        channel=channel,
        recipient=recipient,
        now=now,
    )
    if conv.first_response_at is None:
        conv.first_response_at = now
    conv.waiting_since = None
    if p.agent_id is not None and p.max_tier >= 2:
        # A clinician (or supervisor) answered: an urgent conversation is no longer unanswered.
        await paging.on_clinician_reply(session, conv, now)
    if conv.assignee_id is None and p.agent_id is not None and p.role != "admin":
        # Answering an unassigned conversation takes it, as in every shared inbox.
        await assignment.assign_to(
            session,
            conv,
            p.agent_id,
            now,
            reason="replied",
            by_agent_id=p.agent_id,
            only_if_free=True,
        )
    await timers.on_agent_reply(session, rt, conv, now)
    await session.flush()
    return msg


async def _agent(session: AsyncSession, agent_id: int) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None or not agent.active or agent.role == "integration":
        raise InvalidInput(f"agent {agent_id} does not exist or cannot take conversations")
    return agent


def _agent_principal(a: Agent) -> Principal:
    return Principal(role=a.role, agent_id=a.id, tier=a.tier, name=a.name)


async def claim(session: AsyncSession, rt: Runtime, p: Principal, conv_id: int) -> Conversation:
    _require_agent(p)
    if p.agent_id is None:
        raise InvalidInput("the bootstrap admin token is not an agent and cannot claim")
    conv = await get_conversation(session, p, conv_id, for_update=True)
    if conv.status in ("resolved", "closed"):
        raise ConversationClosed(f"conversation {conv_id} is {conv.status}")
    if conv.assignee_id == p.agent_id:
        return conv
    ok = await assignment.assign_to(
        session,
        conv,
        p.agent_id,
        rt.now(),
        reason="claimed",
        by_agent_id=p.agent_id,
        only_if_free=True,
    )
    if not ok:
        raise Conflict(f"conversation {conv_id} is already assigned to agent {conv.assignee_id}")
    return conv


async def assign(
    session: AsyncSession,
    rt: Runtime,
    p: Principal,
    conv_id: int,
    agent_id: int | None,
    reason: str,
) -> Conversation:
    """Managers assign anyone; agents may only hand over a conversation they hold."""
    _require_agent(p)
    conv = await get_conversation(session, p, conv_id, for_update=True)
    if not p.is_manager and conv.assignee_id != p.agent_id:
        raise Forbidden("only supervisors assign conversations held by someone else; use claim")
    now = rt.now()
    if agent_id is None:
        await assignment.unassign(session, conv, now, reason=reason or "unassigned")
        return conv
    target = await _agent(session, agent_id)
    q = await queue_of(session, conv)
    if not can_read_tier(_agent_principal(target), q.tier if q else 1):
        raise InvalidInput(f"agent {agent_id} cannot work on {q.name if q else 'this'} queue")
    await assignment.assign_to(
        session, conv, agent_id, now, reason=reason or "assigned", by_agent_id=p.agent_id
    )
    return conv


async def transfer(
    session: AsyncSession,
    rt: Runtime,
    p: Principal,
    conv_id: int,
    *,
    queue: str | None,
    agent_id: int | None,
    reason: str,
) -> Conversation:
    _require_agent(p)
    if queue is None and agent_id is None:
        raise InvalidInput("give a queue, an agent_id, or both")
    conv = await get_conversation(session, p, conv_id, for_update=True)
    if conv.status == "closed":
        raise ConversationClosed(f"conversation {conv_id} is closed")
    now = rt.now()
    current = await queue_of(session, conv)
    if queue is not None and (current is None or queue != current.name):
        try:
            target_q = await queue_by_name(session, queue)
        except Conflict as exc:
            raise InvalidInput(f"unknown queue {queue!r}") from exc
        # Any agent may hand work to another queue (up, or back down when it was misrouted);
        # moving it out of their own reach is allowed: that is what an escalation is.
        conv.queue_id = target_q.id
        conv.updated_at = now
        conv.routing_reasons = [
            *list(conv.routing_reasons or [])[-29:],
            f"transferred to {queue} by agent {p.agent_id}: {reason or 'no reason given'}",
        ]
        await conv_event(
            session,
            "conversation.transferred",
            conv,
            agent_id=p.agent_id,
            data={
                "from_queue": current.name if current else None,
                "queue": queue,
                "reason": reason,
            },
            tier=min(current.tier if current else 1, target_q.tier),
        )
        if agent_id is None:
            await assignment.unassign(session, conv, now, reason="transferred")
            await timers.on_queue_change(session, rt, conv, now)
            await assignment.try_assign(session, rt, conv, now)
        else:
            await timers.on_queue_change(session, rt, conv, now)
    if agent_id is not None:
        target = await _agent(session, agent_id)
        q = await queue_of(session, conv)
        if not can_read_tier(_agent_principal(target), q.tier if q else 1):
            raise InvalidInput(f"agent {agent_id} cannot work on the {q.name if q else ''} queue")
        await assignment.assign_to(
            session, conv, agent_id, now, reason=reason or "transferred", by_agent_id=p.agent_id
        )
    return conv


async def escalate(
    session: AsyncSession,
    rt: Runtime,
    p: Principal,
    conv_id: int,
    *,
    reason: str,
    priority: str | None,
) -> Conversation:
    """First line → second line with a reason the clinician will read first."""
    _require_agent(p)
    conv = await get_conversation(session, p, conv_id, for_update=True)
    if conv.status == "closed":
        raise ConversationClosed(f"conversation {conv_id} is closed")
    current = await queue_of(session, conv)
    second = [q for q in rt.policy.queues if q.tier == 2]
    if not second:
        raise Conflict("the policy has no second-line queue")
    if current is not None and current.tier >= 2:
        raise Conflict(f"conversation {conv_id} is already on the second line")
    now = rt.now()
    target = await queue_by_name(session, second[0].name)
    conv.queue_id = target.id
    if priority and PRIORITY_RANK[priority] > PRIORITY_RANK[conv.priority]:
        conv.priority = priority
    conv.updated_at = now
    conv.routing_reasons = [
        *list(conv.routing_reasons or [])[-29:],
        f"escalated to {target.name} by agent {p.agent_id}: {reason}",
    ]
    await conv_event(
        session,
        "conversation.escalated",
        conv,
        agent_id=p.agent_id,
        tier=1,  # the first line sees that it left their queue
        data={
            "from_queue": current.name if current else None,
            "queue": target.name,
            "reason": reason,
            "priority": conv.priority,
        },
    )
    await assignment.unassign(session, conv, now, reason="escalated")
    await timers.on_queue_change(session, rt, conv, now)
    await assignment.try_assign(session, rt, conv, now)
    return conv


async def set_status(
    session: AsyncSession, rt: Runtime, p: Principal, conv_id: int, status: str
) -> Conversation:
    _require_agent(p)
    conv = await get_conversation(session, p, conv_id, for_update=True)
    if status == conv.status:
        return conv
    if not transitions.allowed(conv.status, status):
        raise Conflict(f"cannot change status from {conv.status} to {status}")
    now = rt.now()
    previous = conv.status
    conv.status = status
    conv.updated_at = now
    if status in ("resolved", "closed"):
        conv.resolved_at = conv.resolved_at or now
    else:
        conv.resolved_at = None
    await timers.on_status(session, rt, conv, previous, now)
    await conv_event(
        session,
        f"conversation.{status}" if status != "open" else "conversation.reopened",
        conv,
        agent_id=p.agent_id,
        data={"from": previous, "to": status},
    )
    if status == "resolved" and previous != "resolved":
        await after_resolved(session, rt, conv)
    if status in ("resolved", "closed"):
        # Capacity freed: offer waiting work now rather than at the next sweep.
        await assignment.assign_waiting(session, rt, now)
    return conv
