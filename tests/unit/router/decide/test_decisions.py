"""The small decisions lifted out of the flows: acknowledgements, the status machine, breach
actions and callback retries."""

from __future__ import annotations

import pytest

from router.decide import acks, breach, transitions
from router.decide import callbacks as cb
from router.decide.policy import BreachAction


@pytest.mark.parametrize(
    ("new", "crisis", "urgent", "expected"),
    [
        (True, False, False, ("wait",)),
        (False, False, False, ()),
        (True, True, False, ("crisis",)),
        (True, False, True, ("emergency",)),
        (True, True, True, ("emergency", "crisis")),
        (False, True, False, ("crisis",)),
    ],
)
def test_acknowledgements(new: bool, crisis: bool, urgent: bool, expected: tuple[str, ...]) -> None:
    assert acks.acknowledgements(new=new, crisis=crisis, urgent_medical=urgent) == expected


def test_status_machine() -> None:
    assert transitions.allowed("open", "resolved")
    assert transitions.allowed("resolved", "open")
    assert not transitions.allowed("closed", "open")
    assert not transitions.allowed("resolved", "pending")
    assert not transitions.allowed("nonsense", "open")


def test_breach_raises_priority_once_and_never_past_urgent() -> None:
    act = BreachAction(raise_priority=True, alert_supervisor=False)
    out = breach.on_breach(act, queue="bookings", priority="normal")
    assert (out.priority, out.escalate_to, out.alert_supervisor) == ("high", None, False)
    assert out.changed("normal")
    top = breach.on_breach(act, queue="bookings", priority="urgent")
    assert top.priority == "urgent"
    assert not top.changed("urgent")


def test_breach_escalation_to_the_same_queue_is_no_move() -> None:
    out = breach.on_breach(BreachAction(escalate_to="bookings"), queue="bookings", priority="low")
    assert out.escalate_to is None
    assert not out.changed("low")
    assert out.alert_supervisor
    moved = breach.on_breach(BreachAction(escalate_to="clinical"), queue="bookings", priority="low")
    assert moved.escalate_to == "clinical"
    assert moved.changed("low")


def test_offer_to_next_tier_only_for_an_untaken_first_line_first_response() -> None:
    base = {"kind": "first_response", "assigned": False, "same_queue": True, "tier": 1}
    assert breach.offer_to_next_tier(**base)  # type: ignore[arg-type]
    for change in ({"kind": "resolution"}, {"assigned": True}, {"same_queue": False}, {"tier": 2}):
        assert not breach.offer_to_next_tier(**{**base, **change})  # type: ignore[arg-type]


def test_callback_retries_stop_after_the_last_attempt() -> None:
    assert cb.retry_after_no_answer(1)
    assert cb.retry_after_no_answer(cb.MAX_ATTEMPTS - 1)
    assert not cb.retry_after_no_answer(cb.MAX_ATTEMPTS)
