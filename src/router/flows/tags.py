"""Tags set by hand. Tagging `crisis` does what detection does (`flows.route` and
`flows.after_inbound` on a crisis): second line, `urgent`, the `crisis.detected` supervisor
alert (once per conversation), the safe acknowledgement, assignment to a clinician and the
crisis watch that pages the on-call; and it records who did it and why."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from models import Agent, Conversation
from router.auth import Principal, can_read_tier
from router.errors import Conflict, Forbidden, InvalidInput
from router.flows import assignment, paging
from router.flows import route as flows
from router.flows import sla as timers
from router.flows.outbound import send_crisis_ack
from router.repo import access
from router.repo.events import conv_event, crisis_flagged
from router.repo.queues import queue_by_name, queue_of
from router.runtime import Runtime

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
MAX_TAGS = 50
CRISIS = "crisis"
# Tags that put a conversation in front of a clinician: only someone who may read the second
# line takes them off.
URGENT = frozenset({"crisis", "urgent_medical"})


def validate(tags: Sequence[str]) -> list[str]:
    out: list[str] = []
    for t in tags:
        if not TAG_RE.match(t):
            raise InvalidInput(
                f"tag {t[:50]!r} must be 1-40 characters of a-z, 0-9, '_' or '-', "
                "starting with a letter or digit"
            )
        if t not in out:
            out.append(t)
    return out


async def change(
    session: AsyncSession,
    rt: Runtime,
    p: Principal,
    conv_id: int,
    *,
    add: Sequence[str],
    remove: Sequence[str],
    reason: str | None,
) -> Conversation:
    if p.max_tier == 0:
        raise Forbidden("this token may not act on conversations")
    add, remove = validate(add), validate(remove)
    if set(add) & set(remove):
        raise InvalidInput("a tag cannot be both added and removed")
    conv = await access.get_conversation(session, p, conv_id, for_update=True)
    current = list(conv.tags or [])
    added = [t for t in add if t not in current]
    removed = [t for t in remove if t in current]
    if URGENT & set(removed) and p.max_tier < 2:
        raise Forbidden("only second-line agents may remove crisis or urgent_medical")
    if CRISIS in added:
        if conv.status == "closed":
            raise Conflict(f"conversation {conv_id} is closed")
        if not reason or not reason.strip():
            raise InvalidInput("tagging crisis by hand needs a reason")
    tags = [t for t in current if t not in removed] + added
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"a conversation carries at most {MAX_TAGS} tags")
    if not added and not removed:
        return conv
    now = rt.now()
    conv.tags = tags
    conv.updated_at = now
    await conv_event(
        session,
        "conversation.tagged",
        conv,
        agent_id=p.agent_id,
        data={"added": added, "removed": removed, "reason": reason or ""},
    )
    if CRISIS in added:
        await _crisis_by_hand(session, rt, p, conv, reason or "", now)
    await session.flush()
    return conv


async def _crisis_by_hand(
    session: AsyncSession,
    rt: Runtime,
    p: Principal,
    conv: Conversation,
    reason: str,
    now: datetime,
) -> None:
    current = await queue_of(session, conv)
    second = [q for q in rt.policy.queues if q.tier == 2]
    if not second:
        raise Conflict("the policy has no second-line queue")
    target = (
        current if current is not None and current.tier >= 2 else None
    ) or await queue_by_name(session, second[0].name)
    why = f"crisis tagged by agent {p.agent_id}: {reason}"
    moved = current is None or current.id != target.id
    conv.queue_id = target.id
    conv.priority = "urgent"
    conv.routing_reasons = [*list(conv.routing_reasons or [])[-(flows.MAX_REASONS - 1) :], why]
    await conv_event(
        session,
        "conversation.routed",
        conv,
        agent_id=p.agent_id,
        data={
            "queue": target.name,
            "priority": "urgent",
            "reasons": [why],
            "from_queue": current.name if current else None,
            "by_hand": True,
        },
    )
    await timers.on_queue_change(session, rt, conv, now)
    if moved and conv.assignee_id is not None and not await _can_read(session, conv, target.tier):
        await assignment.hand_back_moved(
            session, conv, now, reason="escalated: crisis", to_queue=target.name
        )
    if not await crisis_flagged(session, conv.id):
        await conv_event(
            session,
            "crisis.detected",
            conv,
            agent_id=p.agent_id,
            data={
                "alert": "supervisor",
                "reasons": [why],
                "by_hand": True,
                "by_agent_id": p.agent_id,
                "reason": reason,
            },
        )
    await send_crisis_ack(session, rt, conv, now)
    if conv.assignee_id is None:
        await assignment.try_assign(session, rt, conv, now)
    await paging.on_urgent(session, rt, conv, now)


async def _can_read(session: AsyncSession, conv: Conversation, tier: int) -> bool:
    agent = await session.get(Agent, conv.assignee_id) if conv.assignee_id else None
    if agent is None:
        return False
    return can_read_tier(Principal(role=agent.role, agent_id=agent.id, tier=agent.tier), tier)
