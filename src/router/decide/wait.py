"""Expected wait for the auto-acknowledgement: pure, explainable, conservative."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "IDLE_PICKUP_S",
    "MAX_WAIT_S",
    "SURGE_DEPTH_PER_AGENT",
    "WaitEstimate",
    "expected_wait",
    "wait_minutes",
]

# Past a day the number is noise and a promise we cannot keep; say "up to a day" instead.
MAX_WAIT_S = 24 * 3600
# More than this many conversations queued per online agent is a surge whatever the timing.
SURGE_DEPTH_PER_AGENT = 5.0
# An agent online with a free slot and nobody ahead of it: promise no more than this.
IDLE_PICKUP_S = 300.0


@dataclass(frozen=True)
class WaitEstimate:
    """An expected wait and where it came from."""

    seconds: int
    surge: bool
    basis: Literal["live", "free", "fallback"]


def expected_wait(
    *,
    depth_ahead: int,
    online_agents: int,
    median_handle_s: float | None,
    fallback_s: float,
    surge_threshold_s: float = 1800,
    max_wait_s: float = MAX_WAIT_S,
    free_slots: int | None = None,
    idle_pickup_s: float = IDLE_PICKUP_S,
) -> WaitEstimate:
    """Estimate how long a new conversation waits for an agent.

    Live (online agents and a recent median handling time):
    ``(depth_ahead + 1) * median_handle_s / online_agents``: the queue ahead plus this
    conversation's own turn, shared by the agents online. It ignores agents handling several
    chats at once, so it errs long: better to under-promise to a patient. Without history,
    when the online agents' ``free_slots`` (capacity left) exceed the queue ahead, someone
    can take it now: at most ``idle_pickup_s`` (``basis="free"``). Otherwise the fallback
    (the SLA first-response target) with ``basis="fallback"``.

    ``surge`` only on live evidence: the history-based estimate exceeds
    ``surge_threshold_s``, or more than ``SURGE_DEPTH_PER_AGENT`` conversations wait per online
    agent (with nobody online the queue counts as one agent's). A long fallback is a target,
    not a surge: a quiet queue is never "busier than usual". Seconds are rounded up and capped
    at ``max_wait_s``.
    """
    if depth_ahead < 0 or online_agents < 0:
        raise ValueError("depth_ahead and online_agents must be >= 0")
    if not (math.isfinite(fallback_s) and fallback_s >= 0):
        raise ValueError(f"fallback_s must be a finite number >= 0, got {fallback_s!r}")
    basis: Literal["live", "free", "fallback"]
    if (
        online_agents > 0
        and median_handle_s is not None
        and math.isfinite(median_handle_s)
        and median_handle_s > 0
    ):
        raw, basis = (depth_ahead + 1) * median_handle_s / online_agents, "live"
    elif online_agents > 0 and free_slots is not None and free_slots > depth_ahead:
        raw, basis = min(fallback_s, idle_pickup_s), "free"
    else:
        raw, basis = fallback_s, "fallback"
    depth_per_agent = depth_ahead / max(online_agents, 1)
    surge = (basis == "live" and raw > surge_threshold_s) or (
        depth_per_agent > SURGE_DEPTH_PER_AGENT
    )
    return WaitEstimate(
        seconds=math.ceil(min(raw, max_wait_s)),
        surge=surge,
        basis=basis,
    )


def wait_minutes(est: WaitEstimate) -> int:
    """Whole minutes to show the customer: rounded up, never less than 1."""
    return max(1, math.ceil(est.seconds / 60))
