"""Which agent takes which conversation: pure, no I/O, no clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from models.vocab import PRIORITY_RANK, URGENT_TAGS

__all__ = [
    "PRIORITY_RANK",
    "URGENT_TAGS",
    "AgentLoad",
    "Choice",
    "ConvForAssign",
    "assignment_order",
    "choose",
    "choose_agent",
    "is_urgent",
    "plan",
    "plan_assignments",
]

# Conversations carrying one of these tags must reach a clinician whatever the load.


def is_urgent(tags: Sequence[str] | frozenset[str] | None) -> bool:
    """A crisis or an urgent medical red flag, by the conversation's tags."""
    return bool(URGENT_TAGS.intersection(tags or ()))


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
    # A supervisor manages the line: auto-assignment gives them work only as the policy's
    # last resort (`escalation.supervisor_last_resort`), never as "the least loaded".
    supervisor: bool = False


@dataclass(frozen=True)
class ConvForAssign:
    """A conversation waiting for an agent."""

    id: int
    tier: int  # tier of its queue
    language: str | None
    priority: str  # low|normal|high|urgent
    skills: frozenset[str]
    waiting_since: datetime
    # A crisis or urgent medical conversation: capacity does not block it (see `choose`).
    urgent: bool = False


@dataclass(frozen=True)
class Choice:
    """Who takes a conversation, and whether that puts them above their capacity."""

    agent_id: int
    over_capacity: bool = False


def _lang(code: str) -> str:
    # "es-ES", "ES" and "es" are all Spanish for routing purposes.
    return code.replace("_", "-").split("-", 1)[0].strip().lower()


def _speaks(agent: AgentLoad, language: str) -> bool:
    return _lang(language) in {_lang(x) for x in agent.languages}


def _can_work(conv: ConvForAssign, agent: AgentLoad) -> bool:
    return (
        agent.presence == "online"
        # Tiers stay separate: a clinician's time is the scarce resource, so tier-2 agents are
        # not a spill-over for first-line work; escalation moves work up explicitly instead.
        and agent.tier == conv.tier
        and agent.capacity >= 0
        and agent.open_count >= 0
        and conv.skills <= agent.skills
    )


def _free(agent: AgentLoad) -> bool:
    return agent.open_count < agent.capacity  # also keeps the load ratio's divisor > 0


def _rank(agent: AgentLoad) -> tuple[float, int, tuple[int, datetime] | tuple[int], int]:
    # Least loaded relative to capacity, then absolute load, then idlest (never assigned
    # first), then lowest id so the same input always gives the same answer. A capacity of 0
    # (only reachable by urgent work) counts as fully loaded by its open conversations.
    idle = (0,) if agent.last_assigned_at is None else (1, agent.last_assigned_at)
    ratio = agent.open_count / agent.capacity if agent.capacity > 0 else 1.0 + agent.open_count
    return (ratio, agent.open_count, idle, agent.id)


def _pick(conv: ConvForAssign, pool: list[AgentLoad]) -> AgentLoad | None:
    if conv.language:
        speakers = [a for a in pool if _speaks(a, conv.language)]
        pool = speakers or pool
    return min(pool, key=_rank) if pool else None


def choose(
    conv: ConvForAssign,
    agents: Sequence[AgentLoad],
    *,
    supervisor_last_resort: bool = False,
) -> Choice | None:
    """Pick the agent for ``conv``, or ``None`` when nobody eligible is free.

    Eligible: online, same tier as the conversation's queue, holding every required skill,
    and not a supervisor (supervisors take work only when ``supervisor_last_resort`` is set and
    no other agent can take it). Among them, speakers of the conversation's language win if
    there are any (otherwise anyone eligible: an answer through a translator beats no answer);
    then least loaded (``open_count / capacity``, then ``open_count``), then longest idle
    (``last_assigned_at`` oldest, never-assigned first), then lowest id.

    Ordinary work needs an agent below capacity. Urgent work (a crisis, an urgent medical red
    flag) is never left waiting for capacity: with nobody free it goes to the least loaded
    eligible agent anyway, and the choice says ``over_capacity``.
    """
    able = [a for a in agents if _can_work(conv, a)]
    workers = [a for a in able if not a.supervisor]
    pools = [workers]
    if supervisor_last_resort:
        pools.append([a for a in able if a.supervisor])
    for pool in pools:
        free = _pick(conv, [a for a in pool if _free(a)])
        if free is not None:
            return Choice(free.id)
        if conv.urgent:
            busy = _pick(conv, pool)
            if busy is not None:
                return Choice(busy.id, over_capacity=True)
    return None


def choose_agent(
    conv: ConvForAssign,
    agents: Sequence[AgentLoad],
    *,
    supervisor_last_resort: bool = False,
) -> int | None:
    """The id chosen by :func:`choose` (``None``: the conversation stays queued)."""
    c = choose(conv, agents, supervisor_last_resort=supervisor_last_resort)
    return c.agent_id if c else None


def assignment_order(convs: Sequence[ConvForAssign]) -> list[ConvForAssign]:
    """Order in which waiting conversations get agents: priority, then oldest waiting first.

    Unknown priorities sort after ``low``; ties end on id for determinism.
    """
    return sorted(
        convs,
        # Most urgent first (the rank is lowest first), then the longest wait.
        key=lambda c: (-PRIORITY_RANK.get(c.priority, -1), c.waiting_since, c.id),
    )


def plan(
    convs: Sequence[ConvForAssign],
    agents: Sequence[AgentLoad],
    *,
    now: datetime | None = None,
    supervisor_last_resort: bool = False,
) -> list[tuple[int, Choice]]:
    """Greedily assign ``convs`` in :func:`assignment_order`; return ``(conv_id, choice)``.

    Each assignment bumps the agent's ``open_count`` before the next choice, so one batch
    cannot overfill anyone (urgent work excepted, see :func:`choose`) and load spreads. Pass
    ``now`` to also mark the agent as just assigned (``last_assigned_at = now``) so equal-load
    ties rotate as they would one by one. Conversations nobody can take are left out (they
    stay queued).
    """
    loads = {a.id: a for a in agents}
    out: list[tuple[int, Choice]] = []
    for conv in assignment_order(convs):
        choice = choose(conv, list(loads.values()), supervisor_last_resort=supervisor_last_resort)
        if choice is None:
            continue
        agent = loads[choice.agent_id]
        loads[choice.agent_id] = replace(
            agent,
            open_count=agent.open_count + 1,
            last_assigned_at=now if now is not None else agent.last_assigned_at,
        )
        out.append((conv.id, choice))
    return out


def plan_assignments(
    convs: Sequence[ConvForAssign],
    agents: Sequence[AgentLoad],
    *,
    now: datetime | None = None,
    supervisor_last_resort: bool = False,
) -> list[tuple[int, int]]:
    """:func:`plan` as ``(conv_id, agent_id)`` pairs."""
    return [
        (cid, c.agent_id)
        for cid, c in plan(convs, agents, now=now, supervisor_last_resort=supervisor_last_resort)
    ]
