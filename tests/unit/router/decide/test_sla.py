"""Business-time arithmetic, timer state machine and per-event transitions (no clock, no DB)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from router.decide.sla import (
    BusinessCalendar,
    SlaTarget,
    Timer,
    TimerKind,
    TimerState,
    add_business_time,
    arm,
    business_seconds_between,
    evaluate,
    next_fire_at,
    pause,
    resume,
    stop,
    time_left,
    transition,
)

MAD = ZoneInfo("Europe/Madrid")
H = 3600
OFFICE = ["09:00-13:00", "14:00-18:00"]
# Madrid, weekdays with a lunch gap. Europe springs forward on Sun 2024-03-31 (CET -> CEST),
# so the weekend of Fri 29 Mar .. Mon 1 Apr is the interesting one.
CAL = BusinessCalendar(
    timezone="Europe/Madrid",
    weekly={d: OFFICE for d in ("mon", "tue", "wed", "thu", "fri")},
)
CAL_HOLIDAY = CAL.model_copy(update={"holidays": [date(2024, 4, 1)]})
ALWAYS_MAD = BusinessCalendar(
    timezone="Europe/Madrid",
    weekly={d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
)
T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
TARGET = SlaTarget(first_response_s=600, next_response_s=900, resolution_s=3600, warn_at=0.8)


def mad(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    """A Madrid wall-clock time (the instant is compared in UTC by ``==``)."""
    return datetime(y, mo, d, h, mi, s, tzinfo=MAD)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# --- calendar validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus", "weekly": {"mon": OFFICE}}, "unknown IANA timezone"),
        ({"weekly": {"mon": ["9:00-13:00"]}}, "bad opening window"),
        ({"weekly": {"mon": ["09:00-25:00"]}}, "bad opening window"),
        ({"weekly": {"mon": ["09:00-24:30"]}}, "bad opening window"),
        ({"weekly": {"mon": ["18:00-09:00"]}}, "must end after it starts"),
        ({"weekly": {"mon": ["09:00-09:00"]}}, "must end after it starts"),
        ({"weekly": {"mon": ["09:00-13:00", "12:00-14:00"]}}, "overlapping"),
        ({"weekly": {"monday": OFFICE}}, "unknown day"),
        ({"weekly": {"mon": OFFICE, "MON": OFFICE}}, "given twice"),
        ({"weekly": {}}, "at least one opening window"),
        ({"weekly": {"sat": []}}, "at least one opening window"),
    ],
)
def test_calendar_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BusinessCalendar.model_validate(kwargs)


def test_calendar_normalises_days_and_sorts_windows() -> None:
    cal = BusinessCalendar(weekly={"Mon": ["14:00-24:00", "09:00-13:00"]})
    assert cal.weekly == {"mon": ["09:00-13:00", "14:00-24:00"]}
    assert cal.timezone == "UTC"
    assert cal.holidays == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_response_s": 0, "next_response_s": 1, "resolution_s": 1},
        {"first_response_s": 1, "next_response_s": 1, "resolution_s": 1, "warn_at": 1.0},
        {"first_response_s": 1, "next_response_s": 1, "resolution_s": 1, "warn_at": 0},
    ],
)
def test_target_rejects(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SlaTarget.model_validate(kwargs)


def test_models_are_frozen() -> None:
    with pytest.raises(ValidationError):
        TARGET.warn_at = 0.5  # type: ignore[misc]


# --- add_business_time / business_seconds_between -----------------------------------------


@pytest.mark.parametrize(
    ("start", "seconds", "calendar", "expected"),
    [
        pytest.param(mad(2024, 3, 26, 10, 0), 1 * H, CAL, mad(2024, 3, 26, 11, 0), id="inside"),
        pytest.param(mad(2024, 3, 26, 12, 30), 1 * H, CAL, mad(2024, 3, 26, 14, 30), id="lunch"),
        pytest.param(mad(2024, 3, 26, 17, 0), 2 * H, CAL, mad(2024, 3, 27, 10, 0), id="overnight"),
        pytest.param(mad(2024, 3, 26, 7, 0), 1800, CAL, mad(2024, 3, 26, 9, 30), id="early"),
        pytest.param(mad(2024, 3, 26, 17, 0), 1 * H, CAL, mad(2024, 3, 26, 18, 0), id="at-close"),
        # Fri CET -> Mon CEST: Monday 10:00 local is 08:00 UTC, not 09:00.
        pytest.param(mad(2024, 3, 29, 17, 0), 2 * H, CAL, mad(2024, 4, 1, 10, 0), id="weekend-dst"),
        pytest.param(
            mad(2024, 3, 29, 17, 0), 2 * H, CAL_HOLIDAY, mad(2024, 4, 2, 10, 0), id="holiday"
        ),
        pytest.param(mad(2024, 3, 30, 12, 0), 0, CAL, mad(2024, 4, 1, 9, 0), id="zero-closed"),
        pytest.param(mad(2024, 3, 26, 10, 0), 0, CAL, mad(2024, 3, 26, 10, 0), id="zero-open"),
        # 24/7 is elapsed time: Sat 12:00 CET + 24 h is Sun 13:00 CEST (the night had 23 h).
        pytest.param(mad(2024, 3, 30, 12, 0), 24 * H, None, mad(2024, 3, 31, 13, 0), id="247"),
        pytest.param(
            mad(2024, 3, 30, 12, 0), 24 * H, ALWAYS_MAD, mad(2024, 3, 31, 13, 0), id="all-day"
        ),
        # Autumn: Sat 12:00 CEST + 24 h is Sun 11:00 CET (the night had 25 h).
        pytest.param(
            mad(2024, 10, 26, 12, 0), 24 * H, ALWAYS_MAD, mad(2024, 10, 27, 11, 0), id="autumn"
        ),
        # 9 working days of 8 h: two weekends skipped.
        pytest.param(mad(2024, 3, 25, 9, 0), 72 * H, CAL, mad(2024, 4, 4, 18, 0), id="long"),
    ],
)
def test_add_business_time(
    start: datetime, seconds: float, calendar: BusinessCalendar | None, expected: datetime
) -> None:
    got = add_business_time(start, seconds, calendar)
    assert got == expected
    assert got.tzinfo is UTC
    assert got.astimezone(MAD).replace(tzinfo=None) == expected.replace(tzinfo=None)


@pytest.mark.parametrize(
    ("start", "end", "calendar", "expected"),
    [
        pytest.param(mad(2024, 3, 29, 17, 0), mad(2024, 4, 1, 10, 0), CAL, 2 * H, id="weekend"),
        pytest.param(mad(2024, 4, 1, 10, 0), mad(2024, 3, 29, 17, 0), CAL, -2 * H, id="negative"),
        pytest.param(mad(2024, 3, 29, 17, 0), mad(2024, 4, 2, 10, 0), CAL_HOLIDAY, 2 * H, id="hol"),
        pytest.param(mad(2024, 3, 30, 8, 0), mad(2024, 3, 31, 20, 0), CAL, 0, id="all-closed"),
        pytest.param(mad(2024, 3, 26, 12, 0), mad(2024, 3, 26, 15, 0), CAL, 2 * H, id="lunch"),
        pytest.param(mad(2024, 3, 30, 12, 0), mad(2024, 3, 31, 12, 0), None, 23 * H, id="247-dst"),
        pytest.param(
            mad(2024, 3, 31, 0, 0), mad(2024, 4, 1, 0, 0), ALWAYS_MAD, 23 * H, id="spring-day"
        ),
        pytest.param(
            mad(2024, 10, 27, 0, 0), mad(2024, 10, 28, 0, 0), ALWAYS_MAD, 25 * H, id="autumn-day"
        ),
        # A window over the skipped hour is only 2 h long; over the repeated hour 4 h.
        pytest.param(
            mad(2024, 3, 31, 0, 0),
            mad(2024, 3, 31, 12, 0),
            BusinessCalendar(timezone="Europe/Madrid", weekly={"sun": ["01:00-04:00"]}),
            2 * H,
            id="gap-window",
        ),
        pytest.param(
            mad(2024, 10, 27, 0, 0),
            mad(2024, 10, 27, 12, 0),
            BusinessCalendar(timezone="Europe/Madrid", weekly={"sun": ["01:00-04:00"]}),
            4 * H,
            id="fold-window",
        ),
    ],
)
def test_business_seconds_between(
    start: datetime, end: datetime, calendar: BusinessCalendar | None, expected: float
) -> None:
    assert business_seconds_between(start, end, calendar) == pytest.approx(expected)


@pytest.mark.parametrize(
    "start",
    [mad(2024, 3, 26, 10, 17, 3), mad(2024, 3, 29, 17, 45), mad(2024, 3, 30, 3, 0), T0],
)
@pytest.mark.parametrize("seconds", [0, 1, 599.5, 4 * H + 1, 3 * 86400])
@pytest.mark.parametrize("calendar", [CAL, CAL_HOLIDAY, ALWAYS_MAD, None])
def test_between_inverts_add(
    start: datetime, seconds: float, calendar: BusinessCalendar | None
) -> None:
    end = add_business_time(start, seconds, calendar)
    assert business_seconds_between(start, end, calendar) == pytest.approx(seconds, abs=1e-5)


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf")])
def test_add_business_time_rejects_bad_seconds(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        add_business_time(T0, seconds, CAL)


def test_naive_datetimes_are_rejected() -> None:
    naive = T0.replace(tzinfo=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_time(naive, 1, None)
    with pytest.raises(ValueError, match="timezone-aware"):
        business_seconds_between(T0, naive, CAL)


# --- timers -------------------------------------------------------------------------------


def test_arm_24_7() -> None:
    t = arm("first_response", TARGET, T0, None)
    assert t == Timer(
        kind="first_response",
        state="running",
        started_at=T0,
        due_at=at(600),
        warn_at=at(480),
        remaining_s=None,
        target_s=600,
    )
    assert next_fire_at(t) == at(480)


@pytest.mark.parametrize(
    ("kind", "due_s"), [("first_response", 600), ("next_response", 900), ("resolution", 3600)]
)
def test_arm_uses_the_kind_target(kind: TimerKind, due_s: int) -> None:
    t = arm(kind, TARGET, T0, None)
    assert (t.due_at, t.target_s) == (at(due_s), due_s)


def test_arm_in_business_time_starts_at_next_opening() -> None:
    t = arm("first_response", TARGET, mad(2024, 3, 29, 17, 55), CAL)  # 5 min before closing
    assert t.warn_at == mad(2024, 4, 1, 9, 3)  # 480 s = 5 min Fri + 3 min Mon
    assert t.due_at == mad(2024, 4, 1, 9, 5)
    assert t.started_at == mad(2024, 3, 29, 17, 55)


RUNNING = arm("first_response", TARGET, T0, None)  # warn at +480, due at +600
WARNED = replace(RUNNING, state="warned", warn_at=None)
BREACHED = replace(RUNNING, state="breached", warn_at=None)
STOPPED = stop(RUNNING)
PAUSED = pause(RUNNING, at(100), None)


@pytest.mark.parametrize(
    ("timer", "now_s", "state", "events"),
    [
        pytest.param(RUNNING, 0, "running", [], id="fresh"),
        pytest.param(RUNNING, 479.999, "running", [], id="before-warn"),
        pytest.param(RUNNING, 480, "warned", ["warn"], id="at-warn"),
        pytest.param(RUNNING, 500, "warned", ["warn"], id="after-warn"),
        pytest.param(RUNNING, 600, "breached", ["breach"], id="past-both-warning-is-moot"),
        pytest.param(RUNNING, 10_000, "breached", ["breach"], id="after-restart"),
        pytest.param(WARNED, 599, "warned", [], id="warned-waits"),
        pytest.param(WARNED, 600, "breached", ["breach"], id="warned-breaches"),
        pytest.param(BREACHED, 10_000, "breached", [], id="breach-once"),
        pytest.param(STOPPED, 10_000, "stopped", [], id="stopped"),
        pytest.param(PAUSED, 10_000, "paused", [], id="paused"),
    ],
)
def test_evaluate(timer: Timer, now_s: float, state: TimerState, events: list[str]) -> None:
    new, fired = evaluate(timer, at(now_s))
    assert (new.state, fired) == (state, events)
    again, fired_again = evaluate(new, at(now_s))  # idempotent
    assert (again, fired_again) == (new, [])
    if state == "breached":
        assert next_fire_at(new) is None


def test_ticking_clock_fires_warn_then_breach_exactly_once() -> None:
    timer, log = RUNNING, []
    for tick in range(0, 2000, 7):
        timer, fired = evaluate(timer, at(tick))
        log += [(e, tick) for e in fired]
    assert log == [("warn", 483), ("breach", 602)]
    assert timer.state == "breached"
    assert next_fire_at(timer) is None


@pytest.mark.parametrize(
    ("timer", "expected"),
    [
        (RUNNING, at(480)),
        (replace(RUNNING, warn_at=None), at(600)),  # resumed past the warning point
        (WARNED, at(600)),
        (BREACHED, None),
        (STOPPED, None),
        (PAUSED, None),
    ],
)
def test_next_fire_at(timer: Timer, expected: datetime | None) -> None:
    assert next_fire_at(timer) == expected


def test_pause_then_resume_keeps_remaining_business_time() -> None:
    paused = pause(RUNNING, at(100), None)
    assert (paused.state, paused.due_at, paused.warn_at) == ("paused", None, None)
    assert paused.remaining_s == pytest.approx(500)
    assert time_left(paused, at(5000), None) == pytest.approx(500)  # frozen while paused

    resumed = resume(paused, at(1000), None)
    assert resumed.state == "running"
    assert resumed.due_at == at(1500)
    assert resumed.warn_at == at(1380)  # 480 - 100 elapsed = 380 to go before the warning
    assert resumed.remaining_s is None
    assert resumed.started_at == T0


def test_resume_uses_the_given_warn_fraction() -> None:
    target = TARGET.model_copy(update={"warn_at": 0.5})
    paused = pause(arm("first_response", target, T0, None), at(100), None)
    assert resume(paused, at(1000), None, warn_fraction=0.5).warn_at == at(1200)


@pytest.mark.parametrize("pause_s", [480, 500, 599])
def test_warned_timer_resumes_warned_and_never_warns_again(pause_s: float) -> None:
    warned, fired = evaluate(RUNNING, at(pause_s))
    assert fired == ["warn"]
    resumed = resume(pause(warned, at(pause_s), None), at(5000), None)
    assert (resumed.state, resumed.warn_at) == ("warned", None)
    assert resumed.due_at == at(5000 + 600 - pause_s)
    assert evaluate(resumed, at(5000 + 599 - pause_s))[1] == []
    assert evaluate(resumed, at(5000 + 600 - pause_s))[1] == ["breach"]


@pytest.mark.parametrize(("target_s", "fraction"), [(3600, 0.8333333), (1000, 0.66666667)])
def test_paused_right_at_the_warning_does_not_warn_twice(target_s: int, fraction: float) -> None:
    # target_s * fraction is not a whole number of microseconds, so the warn instant was
    # rounded: the resume must not see the warning point as still ahead.
    target = SlaTarget(
        first_response_s=target_s, next_response_s=1, resolution_s=1, warn_at=fraction
    )
    timer = arm("first_response", target, T0, None)
    assert timer.warn_at is not None
    warned, fired = evaluate(timer, timer.warn_at)
    assert fired == ["warn"]
    resumed = resume(pause(warned, timer.warn_at, None), at(10_000), None, warn_fraction=fraction)
    assert (resumed.state, resumed.warn_at) == ("warned", None)


def test_overdue_timer_paused_before_evaluation_breaches_on_resume() -> None:
    paused = pause(RUNNING, at(700), None)
    assert paused.remaining_s == 0
    resumed = resume(paused, at(900), None)
    assert resumed.due_at == at(900)
    assert evaluate(resumed, at(900))[1] == ["breach"]


def test_pause_resume_in_business_time_across_dst_weekend() -> None:
    timer = arm("first_response", TARGET.model_copy(update={"first_response_s": 2 * H}),
                mad(2024, 3, 29, 17, 0), CAL)  # fmt: skip
    paused = pause(timer, mad(2024, 3, 29, 17, 30), CAL)
    assert paused.remaining_s == pytest.approx(1.5 * H)
    resumed = resume(paused, mad(2024, 3, 30, 11, 0), CAL)  # customer answers on Saturday
    assert resumed.due_at == mad(2024, 4, 1, 10, 30)  # Monday, CEST
    assert resumed.warn_at == mad(2024, 4, 1, 10, 6)  # 0.8 * 2 h = 96 min from Fri 17:00
    assert time_left(resumed, mad(2024, 3, 31, 12, 0), CAL) == pytest.approx(1.5 * H)


@pytest.mark.parametrize("timer", [BREACHED, STOPPED, PAUSED])
def test_pause_only_touches_running_or_warned(timer: Timer) -> None:
    assert pause(timer, at(200), None) is timer


@pytest.mark.parametrize("timer", [RUNNING, WARNED, BREACHED, STOPPED])
def test_resume_only_touches_paused(timer: Timer) -> None:
    assert resume(timer, at(200), None) is timer


@pytest.mark.parametrize("timer", [RUNNING, WARNED, BREACHED, PAUSED])
def test_stop(timer: Timer) -> None:
    stopped = stop(timer)
    assert (stopped.state, stopped.warn_at, stopped.remaining_s) == ("stopped", None, None)
    assert next_fire_at(stopped) is None
    assert evaluate(stopped, at(10_000)) == (stopped, [])
    assert stop(stopped) is stopped


@pytest.mark.parametrize(
    ("timer", "now_s", "expected"),
    [(RUNNING, 100, 500), (WARNED, 550, 50), (BREACHED, 700, -100), (PAUSED, 0, 500),
     (STOPPED, 0, None)],
)  # fmt: skip
def test_time_left(timer: Timer, now_s: float, expected: float | None) -> None:
    assert time_left(timer, at(now_s), None) == pytest.approx(expected)


# --- transition -----------------------------------------------------------------------------


def run(events: list[str]) -> dict[TimerKind, Timer]:
    """Apply ``events`` one minute apart from T0."""
    timers: dict[TimerKind, Timer] = {}
    for i, event in enumerate(events):
        timers = transition(timers, event, TARGET, at(60 * i), None)
    return timers


def states(timers: dict[TimerKind, Timer]) -> dict[str, str]:
    return {k: t.state for k, t in timers.items()}


FR, NR, RES = "first_response", "next_response", "resolution"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["created"], {FR: "running", RES: "running"}),
        (["created", "customer_message"], {FR: "running", RES: "running"}),
        (["created", "agent_reply"], {FR: "stopped", RES: "running"}),
        (["created", "agent_reply", "customer_message"],
         {FR: "stopped", NR: "running", RES: "running"}),
        (["created", "agent_reply", "customer_message", "agent_reply"],
         {FR: "stopped", NR: "stopped", RES: "running"}),
        (["created", "agent_reply", "customer_message", "agent_reply", "customer_message"],
         {FR: "stopped", NR: "running", RES: "running"}),
        (["created", "agent_reply", "pending"], {FR: "stopped", RES: "paused"}),
        (["created", "agent_reply", "pending", "customer_message"],
         {FR: "stopped", NR: "running", RES: "running"}),
        (["created", "agent_reply", "pending", "opened"], {FR: "stopped", RES: "running"}),
        (["created", "pending"], {FR: "paused", RES: "paused"}),
        (["created", "pending", "customer_message"], {FR: "running", RES: "running"}),
        (["created", "agent_reply", "resolved"], {FR: "stopped", RES: "stopped"}),
        (["created", "resolved", "reopened"], {FR: "stopped", NR: "running", RES: "running"}),
    ],
)  # fmt: skip
def test_transition_states(events: list[str], expected: dict[str, str]) -> None:
    assert states(run(events)) == expected


def test_customer_still_waiting_keeps_the_same_next_response_clock() -> None:
    timers = run(["created", "agent_reply", "customer_message", "customer_message"])
    assert timers["next_response"].started_at == at(120)


def test_created_is_idempotent_and_unchanged_timers_keep_identity() -> None:
    first = run(["created"])
    again = transition(first, "created", TARGET, at(300), None)
    assert all(again[k] is first[k] for k in first)
    replied = transition(first, "agent_reply", TARGET, at(300), None)
    assert replied["resolution"] is first["resolution"]
    assert replied["first_response"] is not first["first_response"]


def test_reopened_arms_a_fresh_resolution_clock() -> None:
    timers = run(["created", "agent_reply", "resolved", "reopened"])
    assert timers["resolution"].started_at == at(180)
    assert timers["resolution"].due_at == at(180 + 3600)


def test_breached_first_response_then_reply_lets_next_response_arm() -> None:
    timers = run(["created"])
    timers = {k: evaluate(t, at(10_000))[0] for k, t in timers.items()}
    assert states(timers) == {FR: "breached", RES: "breached"}
    timers = transition(timers, "agent_reply", TARGET, at(10_001), None)
    timers = transition(timers, "customer_message", TARGET, at(10_002), None)
    assert timers["next_response"].state == "running"


def test_pending_resume_uses_target_warn_fraction() -> None:
    target = TARGET.model_copy(update={"warn_at": 0.5})
    timers = transition({}, "created", target, T0, None)
    timers = transition(timers, "pending", target, at(60), None)
    timers = transition(timers, "opened", target, at(1000), None)
    assert timers["first_response"].warn_at == at(1000 + 300 - 60)
    assert timers["first_response"].due_at == at(1000 + 600 - 60)


def test_transition_in_business_time() -> None:
    timers = transition({}, "created", TARGET, mad(2024, 3, 30, 10, 0), CAL)  # Saturday
    assert timers["first_response"].due_at == mad(2024, 4, 1, 9, 10)


def test_unknown_event() -> None:
    with pytest.raises(ValueError, match="unknown SLA event"):
        transition({}, "escalated", TARGET, T0, None)
