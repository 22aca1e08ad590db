"""Agent choice and batch planning (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from router.decide.assign import (
    AgentLoad,
    Choice,
    ConvForAssign,
    assignment_order,
    choose,
    choose_agent,
    plan,
    plan_assignments,
)

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


def agent(id: int, **kw: object) -> AgentLoad:
    base = AgentLoad(
        id=id,
        tier=1,
        languages=frozenset({"es"}),
        skills=frozenset(),
        capacity=4,
        open_count=0,
        presence="online",
        last_assigned_at=None,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def conv(id: int = 1, **kw: object) -> ConvForAssign:
    base = ConvForAssign(
        id=id,
        tier=1,
        language="es",
        priority="normal",
        skills=frozenset(),
        waiting_since=T0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def ago(minutes: int) -> datetime:
    return T0 - timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("c", "agents", "expected"),
    [
        pytest.param(conv(), [], None, id="nobody"),
        pytest.param(conv(), [agent(1, presence="away"), agent(2, presence="offline")], None,
                     id="only-online"),
        pytest.param(conv(), [agent(1, presence="away"), agent(2)], 2, id="skips-away"),
        pytest.param(conv(), [agent(1, tier=2)], None, id="l2-does-not-take-l1"),
        pytest.param(conv(tier=2), [agent(1), agent(2, tier=2, open_count=3)], 2, id="tier-2"),
        pytest.param(conv(), [agent(1, open_count=4), agent(2, capacity=0)], None,
                     id="full"),
        pytest.param(conv(), [agent(1, open_count=4), agent(2, open_count=3)], 2,
                     id="capacity"),
        pytest.param(conv(skills=frozenset({"billing", "dermatology"})),
                     [agent(1, skills=frozenset({"billing"})),
                      agent(2, skills=frozenset({"billing", "dermatology", "x"}), open_count=3)],
                     2, id="all-skills"),
        pytest.param(conv(language="ru"),
                     [agent(1), agent(2, languages=frozenset({"ru", "en"}), open_count=3)],
                     2, id="language-beats-load"),
        pytest.param(conv(language="ru"), [agent(1, open_count=2), agent(2, open_count=1)], 2,
                     id="no-speaker-anyone"),
        pytest.param(conv(language="ru"),
                     [agent(1, languages=frozenset({"ru"}), presence="away"), agent(2)],
                     2, id="away-speaker-does-not-count"),
        pytest.param(conv(language="ru"),
                     [agent(1, languages=frozenset({"ru"}), tier=2), agent(2)],
                     2, id="ineligible-speaker-does-not-count"),
        pytest.param(conv(language="es-ES"),
                     [agent(1, languages=frozenset({"en"})), agent(2, open_count=3)],
                     2, id="language-subtag"),
        pytest.param(conv(language="ES"),
                     [agent(1, languages=frozenset({"en"})), agent(2, open_count=3)],
                     2, id="language-case"),
        pytest.param(conv(language=None),
                     [agent(1, open_count=2), agent(2, open_count=1, languages=frozenset())],
                     2, id="no-language"),
        pytest.param(conv(), [agent(1, open_count=1, capacity=2), agent(2, open_count=2,
                     capacity=8)], 2, id="ratio-before-count"),
        pytest.param(conv(), [agent(1, open_count=2, capacity=4), agent(2, open_count=1,
                     capacity=2)], 2, id="ratio-tie-then-count"),
        pytest.param(conv(), [agent(1, last_assigned_at=ago(5)),
                              agent(2, last_assigned_at=ago(30))], 2, id="longest-idle"),
        pytest.param(conv(), [agent(1, last_assigned_at=ago(30)),
                              agent(2, last_assigned_at=None)], 2, id="never-assigned-idlest"),
        pytest.param(conv(), [agent(3), agent(2), agent(5)], 2, id="lowest-id"),
    ],
)  # fmt: skip
def test_choose_agent(c: ConvForAssign, agents: list[AgentLoad], expected: int | None) -> None:
    assert choose_agent(c, agents) == expected
    assert choose_agent(c, list(reversed(agents))) == expected  # input order never matters


def test_assignment_order() -> None:
    convs = [
        conv(1, priority="low", waiting_since=ago(90)),
        conv(2, priority="normal", waiting_since=ago(10)),
        conv(3, priority="urgent", waiting_since=ago(1)),
        conv(4, priority="normal", waiting_since=ago(20)),
        conv(5, priority="high", waiting_since=ago(5)),
        conv(6, priority="weird", waiting_since=ago(500)),
        conv(7, priority="normal", waiting_since=ago(20)),
    ]
    assert [c.id for c in assignment_order(convs)] == [3, 5, 4, 7, 2, 1, 6]


def test_plan_assignments_updates_loads_between_choices() -> None:
    convs = [conv(i, waiting_since=ago(10 - i)) for i in range(1, 6)]
    agents = [agent(1, capacity=2), agent(2, capacity=2, open_count=1)]
    # 1 -> agent 1 (0/2); 2 -> agent 1 (1/2 vs 1/2, both never assigned, lower id);
    # 3 -> agent 2 (2/2 full); 4 and 5 stay queued.
    assert plan_assignments(convs, agents) == [(1, 1), (2, 1), (3, 2)]


def test_plan_assignments_rotates_ties_when_given_now() -> None:
    convs = [conv(i, waiting_since=ago(10 - i)) for i in range(1, 5)]
    agents = [agent(1, capacity=10, open_count=5), agent(2, capacity=10, open_count=5)]
    assert plan_assignments(convs, agents, now=T0) == [(1, 1), (2, 2), (3, 1), (4, 2)]


def test_plan_assignments_serves_urgent_first_and_skips_unassignable() -> None:
    convs = [
        conv(1, waiting_since=ago(60)),
        conv(2, priority="urgent", waiting_since=ago(1)),
        conv(3, tier=2, priority="urgent"),
    ]
    assert plan_assignments(convs, [agent(1, capacity=1)]) == [(2, 1)]


def test_plan_assignments_does_not_mutate_input() -> None:
    agents = [agent(1, capacity=1)]
    plan_assignments([conv(1)], agents, now=T0)
    assert agents[0].open_count == 0
    assert agents[0].last_assigned_at is None


def clinician(id: int, **kw: object) -> AgentLoad:
    return agent(id, **{"tier": 2, **kw})


def supervisor(id: int, **kw: object) -> AgentLoad:
    return agent(id, **{"tier": 2, "supervisor": True, **kw})


URGENT = conv(tier=2, priority="urgent", urgent=True)


@pytest.mark.parametrize(
    ("c", "agents", "last_resort", "expected"),
    [
        pytest.param(URGENT, [clinician(1, open_count=4), clinician(2, open_count=6, capacity=4)],
                     False, Choice(1, over_capacity=True), id="urgent-above-capacity-least-loaded"),
        pytest.param(URGENT, [clinician(1, open_count=4), clinician(2, open_count=1)], False,
                     Choice(2), id="urgent-free-clinician-first"),
        pytest.param(URGENT, [clinician(1, open_count=0, capacity=0),
                              clinician(2, open_count=5, capacity=4)],
                     False, Choice(1, over_capacity=True), id="cap-0-idle-but-full"),
        pytest.param(URGENT, [supervisor(1), clinician(2, open_count=9)], False,
                     Choice(2, over_capacity=True), id="urgent-clinician-before-idle-supervisor"),
        pytest.param(URGENT, [supervisor(1)], False, None, id="urgent-never-supervisor-by-default"),
        pytest.param(URGENT, [supervisor(1)], True, Choice(1), id="urgent-supervisor-last-resort"),
        pytest.param(URGENT, [supervisor(1), clinician(2, open_count=4)], True,
                     Choice(2, over_capacity=True), id="last-resort-only-with-no-clinician"),
        pytest.param(URGENT, [clinician(1, presence="offline"), clinician(2, tier=1)], False,
                     None, id="urgent-still-needs-online-and-tier"),
        pytest.param(conv(tier=2), [clinician(1, open_count=4)], False, None,
                     id="routine-blocked-by-capacity"),
        pytest.param(conv(tier=2), [supervisor(1)], False, None, id="routine-not-to-supervisor"),
        pytest.param(conv(tier=2), [supervisor(1), clinician(2, open_count=3)], False, Choice(2),
                     id="routine-clinician-not-least-loaded-supervisor"),
    ],
)  # fmt: skip
def test_choose_urgent_and_supervisors(
    c: ConvForAssign, agents: list[AgentLoad], last_resort: bool, expected: Choice | None
) -> None:
    assert choose(c, agents, supervisor_last_resort=last_resort) == expected


def test_plan_places_every_urgent_conversation_when_everyone_is_full() -> None:
    urgent = [replace(URGENT, id=i, waiting_since=ago(i)) for i in (1, 2, 3)]
    routine = conv(9, tier=2)
    agents = [clinician(1, open_count=4), clinician(2, open_count=4), supervisor(3)]
    got = plan(urgent + [routine], agents)
    assert [cid for cid, _ in got] == [3, 2, 1], "oldest urgent first; routine stays queued"
    assert all(c.over_capacity for _, c in got)
    assert sorted(c.agent_id for _, c in got).count(3) == 0, "never the supervisor"
    assert {c.agent_id for _, c in got} == {1, 2}, "spread over the clinicians"
