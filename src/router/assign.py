"""Which agent takes which conversation: pure, no I/O, no clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

__all__ = [
    "PRIORITY_RANK",
    "AgentLoad",
    "ConvForAssign",
    "assignment_order",
    "choose_agent",
    "plan_assignments",
]

PRIORITY_RANK: dict[str, int] = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


@dataclass(frozen=True)
class AgentLoad:
    """An agent as assignment sees it: who they are, what they can take, how busy they are."""

    id: int
    tier: int  # 1 = first line, 2 = second line (clinicians)
    languages: frozenset[str]
    skills: frozenset[str]
    capacity: int  # max concurrent open conversations
    open_count: int
    presence: str  # "online" | "away" | "offline"
    last_assigned_at: datetime | None


@dataclass(frozen=True)
class ConvForAssign:
    """A conversation waiting for an agent."""

    id: int
    tier: int  # tier of its queue
    language: str | None
    priority: str  # low|normal|high|urgent
    skills: frozenset[str]
    waiting_since: datetime


def _lang(code: str) -> str:
    # "es-ES", "ES" and "es" are all Spanish for routing purposes.
    return code.replace("_", "-").split("-", 1)[0].strip().lower()


def _speaks(agent: AgentLoad, language: str) -> bool:
    return _lang(language) in {_lang(x) for x in agent.languages}


def _eligible(conv: ConvForAssign, agent: AgentLoad) -> bool:
    return (
        agent.presence == "online"
        # Tiers stay separate: a clinician's time is the scarce resource, so tier-2 agents are
        # not a spill-over for first-line work; escalation moves work up explicitly instead.
        and agent.tier == conv.tier
        and 0 <= agent.open_count < agent.capacity  # also keeps the load ratio's divisor > 0
        and conv.skills <= agent.skills
    )


def _rank(agent: AgentLoad) -> tuple[float, int, tuple[int, datetime] | tuple[int], int]:
    # Least loaded relative to capacity, then absolute load, then idlest (never assigned
    # first), then lowest id so the same input always gives the same answer.
    idle = (0,) if agent.last_assigned_at is None else (1, agent.last_assigned_at)
    return (agent.open_count / agent.capacity, agent.open_count, idle, agent.id)


def choose_agent(conv: ConvForAssign, agents: Sequence[AgentLoad]) -> int | None:
    """Pick the agent for ``conv``, or ``None`` when nobody eligible is free.

    Eligible: online, same tier as the conversation's queue, below capacity, holding every
    required skill. Among them, speakers of the conversation's language win if there are any
    (otherwise anyone eligible: an answer through a translator beats no answer); then least
    loaded (``open_count / capacity``, then ``open_count``), then longest idle
    (``last_assigned_at`` oldest, never-assigned first), then lowest id.
    """
    pool = [a for a in agents if _eligible(conv, a)]
    if conv.language:
        speakers = [a for a in pool if _speaks(a, conv.language)]
        pool = speakers or pool
    if not pool:
        return None
    return min(pool, key=_rank).id


def assignment_order(convs: Sequence[ConvForAssign]) -> list[ConvForAssign]:
    """Order in which waiting conversations get agents: priority, then oldest waiting first.

    Unknown priorities sort after ``low``; ties end on id for determinism.
    """
    return sorted(
        convs,
        key=lambda c: (PRIORITY_RANK.get(c.priority, len(PRIORITY_RANK)), c.waiting_since, c.id),
    )


def plan_assignments(
    convs: Sequence[ConvForAssign],
    agents: Sequence[AgentLoad],
    *,
    now: datetime | None = None,
) -> list[tuple[int, int]]:
    """Greedily assign ``convs`` in :func:`assignment_order`; return ``(conv_id, agent_id)``.

    Each assignment bumps the agent's ``open_count`` before the next choice, so one batch
    cannot overfill anyone and load spreads. Pass ``now`` to also mark the agent as just
    assigned (``last_assigned_at = now``) so equal-load ties rotate as they would one by one.
    Conversations nobody can take are left out (they stay queued).
    """
    loads = {a.id: a for a in agents}
    plan: list[tuple[int, int]] = []
    for conv in assignment_order(convs):
        agent_id = choose_agent(conv, list(loads.values()))
        if agent_id is None:
            continue
        agent = loads[agent_id]
        loads[agent_id] = replace(
            agent,
            open_count=agent.open_count + 1,
            last_assigned_at=now if now is not None else agent.last_assigned_at,
        )
        plan.append((conv.id, agent_id))
    return plan
