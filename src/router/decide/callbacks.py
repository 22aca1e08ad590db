"""The callback-request state machine's decisions: which calls open a request, when to try
again after an unanswered attempt, and the SLA state agents see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from models import CallbackRequest

# Statuses of an inbound call that leave the customer waiting for us to ring back.
CALLBACK_STATUSES = frozenset({"missed", "busy", "failed", "voicemail"})
Outcome = Literal["done", "no_answer", "wrong_number"]
MAX_ATTEMPTS = 3
# Wait before the next attempt after the n-th unanswered one (then the last value).
RETRY_BACKOFF = (timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))


@dataclass(frozen=True)
class CallbackSla:
    """The callback SLA as agents see it."""

    state: Literal["running", "breached", "met", "stopped"]
    due_at: datetime | None
    time_left_s: float | None


def retry_delay(attempts: int) -> timedelta:
    """Pure: how long to wait after `attempts` unanswered attempts (1-based)."""
    return RETRY_BACKOFF[min(max(attempts, 1), len(RETRY_BACKOFF)) - 1]


def sla_view(cb: CallbackRequest, now: datetime) -> CallbackSla:
    """Pure: the SLA state of one request at `now` (24/7 time left; the deadline itself was
    computed in business time)."""
    if cb.status != "open":
        met = cb.closed_at is not None and cb.due_at is not None and cb.closed_at <= cb.due_at
        return CallbackSla("met" if met else "stopped", cb.due_at, None)
    if cb.due_at is None:
        return CallbackSla("running", None, None)
    left = (cb.due_at - now).total_seconds()
    state: Literal["running", "breached"] = (
        "breached" if cb.breached_at is not None or left <= 0 else "running"
    )
    return CallbackSla(state, cb.due_at, left)


def retry_after_no_answer(attempts: int) -> bool:
    """After `attempts` unanswered attempts: try again (True) or close as no_answer."""
    return attempts < MAX_ATTEMPTS
