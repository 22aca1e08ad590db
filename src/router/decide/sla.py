"""SLA deadlines in business time: pure, no I/O, no clock (``now`` is always passed in).

Instants are tz-aware and every instant this module returns is in UTC (what the DB stores).
Opening hours are interpreted in the calendar's local time, so a 09:00-18:00 window stays
09:00-18:00 across DST changes while the arithmetic on instants is done in UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "BusinessCalendar",
    "SlaEvent",
    "SlaTarget",
    "Timer",
    "TimerKind",
    "TimerState",
    "TransitionEvent",
    "add_business_time",
    "arm",
    "business_seconds_between",
    "evaluate",
    "next_fire_at",
    "pause",
    "resume",
    "stop",
    "time_left",
    "transition",
]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class SlaTarget(BaseModel):
    """Targets (seconds of business time) for one queue x priority."""

    model_config = ConfigDict(frozen=True)

    first_response_s: int = Field(gt=0)
    next_response_s: int = Field(gt=0)
    resolution_s: int = Field(gt=0)
    warn_at: float = Field(default=0.8, gt=0, lt=1)


@lru_cache(maxsize=256)
def _parse_window(raw: str) -> tuple[time, time | None]:
    """``"09:00-13:00"`` -> (09:00, 13:00); an end of ``24:00`` is returned as ``None``."""
    m = _WINDOW_RE.match(raw.strip())
    if m is None:
        raise ValueError(f"bad opening window {raw!r}, expected 'HH:MM-HH:MM'")
    sh, sm, eh, em = (int(g) for g in m.groups())
    if eh == 24 and em != 0:
        raise ValueError(f"bad opening window {raw!r}")
    start = time(sh, sm)
    end = None if eh == 24 else time(eh, em)
    # Windows never cross midnight: write "22:00-24:00" and "00:00-06:00" on the next day.
    if end is not None and end <= start:
        raise ValueError(f"opening window {raw!r} must end after it starts, on the same day")
    return start, end


class BusinessCalendar(BaseModel):
    """Opening hours of a queue, in local time of ``timezone``; a missing day is closed."""

    model_config = ConfigDict(frozen=True)

    timezone: str = "UTC"
    weekly: dict[str, list[str]]
    holidays: list[date] = []

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {v!r}") from exc
        return v

    @field_validator("weekly")
    @classmethod
    def _check_weekly(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for day, windows in v.items():
            key = day.strip().lower()
            if key not in _DAYS:
                raise ValueError(f"unknown day {day!r}, expected one of {', '.join(_DAYS)}")
            if key in out:
                raise ValueError(f"day {key!r} given twice")
            parsed = sorted(((_parse_window(w), w.strip()) for w in windows), key=lambda p: p[0][0])
            for (prev, prev_raw), (cur, cur_raw) in zip(parsed, parsed[1:], strict=False):
                if prev[1] is None or prev[1] > cur[0]:
                    raise ValueError(f"overlapping windows on {key}: {prev_raw}, {cur_raw}")
            out[key] = [raw for _, raw in parsed]
        # A calendar that is never open would make every deadline infinitely far away.
        if not any(out.values()):
            raise ValueError("a business calendar needs at least one opening window")
        return out


def is_open(calendar: BusinessCalendar, now: datetime) -> bool:
    """True when ``now`` (tz-aware) falls inside the calendar's opening hours."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(ZoneInfo(calendar.timezone))
    if local.date() in calendar.holidays:
        return False
    t = local.time().replace(tzinfo=None)
    for raw in calendar.weekly.get(_DAYS[local.weekday()], ()):
        start, end = _parse_window(raw)  # end None: until midnight ("24:00")
        if start <= t and (end is None or t < end):
            return True
    return False


# --- business-time arithmetic -------------------------------------------------------------


def _utc(dt: datetime, name: str = "datetime") -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return dt.astimezone(UTC)


def _open_intervals(
    calendar: BusinessCalendar, start: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """Yield the calendar's open intervals as UTC ``[a, b)``, clipped to begin at ``start``.

    Infinite generator: the consumer stops. Windows are built from local wall-clock times and
    only then converted to UTC, so a DST day's windows are as long as they really are (a window
    over the skipped hour shrinks; one over the repeated hour grows).
    """
    tz = ZoneInfo(calendar.timezone)
    holidays = frozenset(calendar.holidays)
    day = start.astimezone(tz).date()  # windows end by local midnight, so no earlier day matters
    while True:
        if day not in holidays:
            for raw in calendar.weekly.get(_DAYS[day.weekday()], ()):
                w_start, w_end = _parse_window(raw)
                a = datetime.combine(day, w_start, tzinfo=tz).astimezone(UTC)
                end_day, end_t = (day, w_end) if w_end else (day + timedelta(days=1), time(0))
                b = datetime.combine(end_day, end_t, tzinfo=tz).astimezone(UTC)
                if b > start and b > a:
                    yield max(a, start), b
        day += timedelta(days=1)


def add_business_time(
    start: datetime, seconds: float, calendar: BusinessCalendar | None
) -> datetime:
    """Return the instant (UTC) when ``seconds`` of business time have elapsed after ``start``.

    ``calendar=None`` is a 24/7 clock: plain addition (in UTC, so DST never shifts it). With a
    calendar only open hours count; if ``start`` is outside them the clock starts at the next
    opening (so ``seconds=0`` gives the next opening). A deadline landing exactly on a closing
    time stays there rather than moving to the next opening.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    begin = _utc(start, "start")
    if calendar is None:
        return begin + timedelta(seconds=seconds)
    left = seconds
    for a, b in _open_intervals(calendar, begin):
        span = (b - a).total_seconds()
        if left <= span:
            return a + timedelta(seconds=left)
        left -= span
    raise AssertionError("unreachable: _open_intervals is infinite")  # pragma: no cover


def business_seconds_between(
    start: datetime, end: datetime, calendar: BusinessCalendar | None
) -> float:
    """Business seconds in ``[start, end)``; negative when ``end`` is before ``start``.

    The inverse of :func:`add_business_time`: ``business_seconds_between(s,
    add_business_time(s, x, c), c) == x``. Signed so that "time left" can go negative (overdue).
    """
    s, e = _utc(start, "start"), _utc(end, "end")
    if e < s:
        return -business_seconds_between(e, s, calendar)
    if calendar is None:
        return (e - s).total_seconds()
    total = 0.0
    for a, b in _open_intervals(calendar, s):
        if a >= e:
            break
        total += (min(b, e) - a).total_seconds()
    return total


# --- timers ---------------------------------------------------------------------------------

TimerKind = Literal["first_response", "next_response", "resolution"]
# "stopped" = met or cancelled
TimerState = Literal["running", "paused", "warned", "breached", "stopped"]
SlaEvent = Literal["warn", "breach"]
TransitionEvent = Literal[
    "created", "customer_message", "agent_reply", "pending", "opened", "reopened", "resolved"
]
TIMER_KINDS: tuple[TimerKind, ...] = get_args(TimerKind)
_RESPONSE_KINDS: tuple[TimerKind, ...] = ("first_response", "next_response")
_ON_CREATED: tuple[TimerKind, ...] = ("first_response", "resolution")
_ON_REOPENED: tuple[TimerKind, ...] = ("next_response", "resolution")
_ACTIVE: frozenset[TimerState] = frozenset({"running", "warned", "paused"})
# Datetimes have microsecond resolution, so business-second sums carry ~1e-6 s of rounding.
_EPS_S = 1e-3


@dataclass(frozen=True)
class Timer:
    """One SLA timer of a conversation; mirrors the ``sla_timers`` row (plus ``next_fire_at``)."""

    kind: TimerKind
    state: TimerState
    started_at: datetime
    due_at: datetime | None  # None while paused
    warn_at: datetime | None  # when the warning fires; None once warned or while paused
    remaining_s: float | None = None  # business seconds left, set while paused
    target_s: float = 0


def _target_seconds(kind: TimerKind, target: SlaTarget) -> int:
    match kind:
        case "first_response":
            return target.first_response_s
        case "next_response":
            return target.next_response_s
        case "resolution":
            return target.resolution_s


def arm(
    kind: TimerKind, target: SlaTarget, now: datetime, calendar: BusinessCalendar | None
) -> Timer:
    """Start a ``kind`` timer at ``now``: due after its target, warning at ``warn_at`` of it."""
    target_s = _target_seconds(kind, target)
    return Timer(
        kind=kind,
        state="running",
        started_at=_utc(now, "now"),
        due_at=add_business_time(now, target_s, calendar),
        warn_at=add_business_time(now, target_s * target.warn_at, calendar),
        target_s=target_s,
    )


def pause(timer: Timer, now: datetime, calendar: BusinessCalendar | None) -> Timer:
    """Freeze a running/warned timer, keeping the business seconds left; others are unchanged.

    Overdue-but-not-yet-evaluated timers keep 0 seconds left, so they breach right on resume.
    """
    if timer.state not in ("running", "warned") or timer.due_at is None:
        return timer
    left = max(0.0, business_seconds_between(now, timer.due_at, calendar))
    return replace(timer, state="paused", due_at=None, warn_at=None, remaining_s=left)


def resume(
    timer: Timer,
    now: datetime,
    calendar: BusinessCalendar | None,
    *,
    warn_fraction: float = 0.8,
) -> Timer:
    """Restart a paused timer at ``now`` from its remaining business seconds.

    ``warn_fraction`` must be the ``SlaTarget.warn_at`` the timer was armed with (the row does
    not store it; :func:`transition` passes it). Whether the warning already fired is derived
    from the elapsed share of ``target_s``: past the warning point the timer comes back
    ``warned`` with ``warn_at=None`` so the warning never fires twice.
    """
    if timer.state != "paused":
        return timer
    left = max(0.0, timer.remaining_s or 0.0)
    elapsed = timer.target_s - left
    warn_elapsed = timer.target_s * warn_fraction
    due = add_business_time(now, left, calendar)
    if elapsed + _EPS_S >= warn_elapsed:
        return replace(timer, state="warned", due_at=due, warn_at=None, remaining_s=None)
    warn = add_business_time(now, warn_elapsed - elapsed, calendar)
    return replace(timer, state="running", due_at=due, warn_at=warn, remaining_s=None)


def stop(timer: Timer) -> Timer:
    """Stop a timer (met or cancelled); nothing fires afterwards. Idempotent.

    A breached timer becomes ``stopped`` too: the breach itself is recorded once as an event,
    and "no active response timer" is what tells :func:`transition` the agent has replied.
    ``due_at`` is kept for the record.
    """
    if timer.state == "stopped":
        return timer
    return replace(timer, state="stopped", warn_at=None, remaining_s=None)


def next_fire_at(timer: Timer) -> datetime | None:
    """The earliest instant something still has to fire (the scheduler's indexed column)."""
    if timer.state == "running":
        pending = [t for t in (timer.warn_at, timer.due_at) if t is not None]
        return min(pending) if pending else None
    if timer.state == "warned":
        return timer.due_at
    return None  # paused, breached and stopped timers have nothing to fire


def evaluate(timer: Timer, now: datetime) -> tuple[Timer, list[SlaEvent]]:
    """Advance ``timer`` to ``now``; return the new timer and the events to record, in order.

    Idempotent: evaluating the result again at the same ``now`` yields no events, and a breach
    fires exactly once. When a timer is found past both its warning and its deadline (e.g. the
    scheduler was down) only ``["breach"]`` is returned: the warning exists to prevent the
    breach, so after it it is moot and would just page people twice.
    """
    if timer.state not in ("running", "warned"):
        return timer, []
    at = _utc(now, "now")
    if timer.due_at is not None and at >= timer.due_at:
        return replace(timer, state="breached", warn_at=None), ["breach"]
    if timer.state == "running" and timer.warn_at is not None and at >= timer.warn_at:
        return replace(timer, state="warned", warn_at=None), ["warn"]
    return timer, []


def time_left(timer: Timer, now: datetime, calendar: BusinessCalendar | None) -> float | None:
    """Business seconds until the deadline; negative once overdue; ``None`` when stopped.

    A paused timer reports its frozen remainder.
    """
    if timer.state == "paused":
        return timer.remaining_s
    if timer.state == "stopped" or timer.due_at is None:
        return None
    return business_seconds_between(now, timer.due_at, calendar)


# --- which timers run, per conversation event -----------------------------------------------


def transition(
    timers: Mapping[TimerKind, Timer],
    event: TransitionEvent | str,
    target: SlaTarget,
    now: datetime,
    calendar: BusinessCalendar | None,
) -> dict[TimerKind, Timer]:
    """Apply a conversation event to its timers; return the whole new mapping.

    Unchanged timers are returned as the same objects, so ``new[k] is not old.get(k)`` tells
    the caller which rows to write. Call :func:`evaluate` first so due warnings/breaches are
    recorded before a timer is paused or stopped. Events:

    - ``created``: arm ``first_response`` and ``resolution`` (kinds already present are kept,
      so a retried event changes nothing).
    - ``customer_message``: resume paused timers (a reply while ``pending`` reopens the clock);
      then, if no response timer is active (``first_response``/``next_response`` running,
      warned or paused), the agent has replied since the customer last wrote, so arm
      ``next_response``. Otherwise the customer is still waiting on the same timer.
    - ``agent_reply``: stop ``first_response`` and ``next_response``.
    - ``pending``: pause every running/warned timer, resolution included (DESIGN: timers pause
      while waiting on the customer; their time is not ours to be measured on).
    - ``opened``: an agent sets a pending conversation back to open: resume, arm nothing.
    - ``reopened``: a resolved conversation gets a new customer message: stop leftovers, arm a
      fresh ``next_response`` (the first response was already given) and ``resolution``.
    - ``resolved``: stop all.
    """
    out: dict[TimerKind, Timer] = dict(timers)

    def _resume_all() -> None:
        for k, t in out.items():
            out[k] = resume(t, now, calendar, warn_fraction=target.warn_at)

    match event:
        case "created":
            for kind in _ON_CREATED:
                if kind not in out:
                    out[kind] = arm(kind, target, now, calendar)
        case "customer_message":
            _resume_all()
            # A breached response timer still means "no reply yet": don't start a new clock.
            waiting = any(
                k in out and out[k].state in _ACTIVE | {"breached"} for k in _RESPONSE_KINDS
            )
            if not waiting:
                out["next_response"] = arm("next_response", target, now, calendar)
        case "agent_reply":
            for kind in _RESPONSE_KINDS:
                if kind in out:
                    out[kind] = stop(out[kind])
        case "pending":
            for k, t in out.items():
                out[k] = pause(t, now, calendar)
        case "opened":
            _resume_all()
        case "reopened":
            for k, t in out.items():
                out[k] = stop(t)
            for kind in _ON_REOPENED:
                out[kind] = arm(kind, target, now, calendar)
        case "resolved":
            for k, t in out.items():
                out[k] = stop(t)
        case _:
            raise ValueError(f"unknown SLA event {event!r}")
    return out
