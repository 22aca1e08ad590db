"""Crisis escalation decisions (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from router.decide.assign import AgentLoad
from router.decide.crisis import (
    NO_CLINICIAN,
    UNANSWERED,
    Escalation,
    WatchSnapshot,
    on_arrival,
    on_due,
    page_text,
    watch_due_at,
)

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


def agent(id: int, *, tier: int = 2, presence: str = "online", sup: bool = False) -> AgentLoad:
    return AgentLoad(
        id=id,
        tier=tier,
        languages=frozenset({"es"}),
        skills=frozenset(),
        capacity=4,
        open_count=4,
        presence=presence,
        last_assigned_at=None,
        supervisor=sup,
    )


def watch(**kw: object) -> WatchSnapshot:
    base: dict[str, object] = {
        "due_at": T0,
        "state": "watching",
        "conversation_open": True,
        "tags": frozenset({"crisis", "self_harm"}),
    }
    return WatchSnapshot(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("online", "switch", "expected"),
    [(0, True, NO_CLINICIAN), (0, False, None), (1, True, None), (3, True, None)],
)
def test_on_arrival_pages_at_once_only_with_no_clinician(
    online: int, switch: bool, expected: str | None
) -> None:
    assert on_arrival(online, page_when_no_clinician=switch) == expected


def test_watch_due_at() -> None:
    assert watch_due_at(T0, 300) == T0 + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("w", "now", "expected"),
    [
        pytest.param(watch(), T0 - timedelta(seconds=1), None, id="not-yet"),
        pytest.param(watch(), T0, Escalation((1, 4), UNANSWERED), id="due-offers-clinicians"),
        pytest.param(watch(state="answered"), T0, None, id="answered"),
        pytest.param(watch(state="escalated"), T0, None, id="once"),
        pytest.param(watch(conversation_open=False), T0, None, id="resolved"),
        pytest.param(watch(tags=frozenset({"clinical"})), T0, None, id="no-longer-urgent"),
        pytest.param(watch(tags=frozenset({"urgent_medical"})), T0,
                     Escalation((1, 4), UNANSWERED), id="urgent-medical"),
    ],
)  # fmt: skip
def test_on_due(w: WatchSnapshot, now: datetime, expected: Escalation | None) -> None:
    agents = [
        agent(4),
        agent(1),
        agent(2, presence="offline"),
        agent(3, sup=True),
        agent(5, tier=1),
    ]
    assert on_due(w, agents, 2, now) == expected


def test_on_due_with_nobody_online_still_pages() -> None:
    assert on_due(watch(), [], 2, T0) == Escalation((), UNANSWERED)


def test_page_text_names_what_and_where_never_the_message() -> None:
    subject, body = page_text(
        conversation_id=42,
        tags=["crisis", "self_harm", "clinical"],
        reason=UNANSWERED,
        minutes=5,
        online_clinicians=2,
        link="https://careline.example/api/v1/conversations/42",
    )
    assert "#42" in subject
    assert "crisis" in subject
    assert "within 5 min" in body
    assert "self_harm" in body
    assert body.endswith("https://careline.example/api/v1/conversations/42")
    _, none_online = page_text(
        conversation_id=1, tags=["urgent_medical"], reason=NO_CLINICIAN, minutes=5,
        online_clinicians=0, link="x",
    )  # fmt: skip
    assert "No clinician is online" in none_online
