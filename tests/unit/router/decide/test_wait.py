"""Expected wait for the auto-acknowledgement (pure)."""

from __future__ import annotations

import pytest

from router.decide.wait import MAX_WAIT_S, WaitEstimate, expected_wait, wait_minutes


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # (depth_ahead + 1) * median / online
        ({"depth_ahead": 0, "online_agents": 1, "median_handle_s": 300},
         WaitEstimate(300, surge=False, basis="live")),
        ({"depth_ahead": 3, "online_agents": 2, "median_handle_s": 300},
         WaitEstimate(600, surge=False, basis="live")),
        ({"depth_ahead": 2, "online_agents": 3, "median_handle_s": 100.5},
         WaitEstimate(101, surge=False, basis="live")),  # 100.5 rounded up
        # No data or nobody online: the fallback, labelled as such.
        ({"depth_ahead": 3, "online_agents": 0, "median_handle_s": 300},
         WaitEstimate(900, surge=False, basis="fallback")),
        ({"depth_ahead": 3, "online_agents": 2, "median_handle_s": None},
         WaitEstimate(900, surge=False, basis="fallback")),
        ({"depth_ahead": 3, "online_agents": 2, "median_handle_s": 0},
         WaitEstimate(900, surge=False, basis="fallback")),
        ({"depth_ahead": 3, "online_agents": 2, "median_handle_s": float("nan")},
         WaitEstimate(900, surge=False, basis="fallback")),
        # Surge by time, by depth per agent, and with nobody online.
        ({"depth_ahead": 9, "online_agents": 1, "median_handle_s": 181},
         WaitEstimate(1810, surge=True, basis="live")),
        ({"depth_ahead": 9, "online_agents": 1, "median_handle_s": 180},
         WaitEstimate(1800, surge=True, basis="live")),  # 9 per agent > 5
        ({"depth_ahead": 5, "online_agents": 1, "median_handle_s": 60},
         WaitEstimate(360, surge=False, basis="live")),  # exactly 5 per agent: not yet
        ({"depth_ahead": 6, "online_agents": 0, "median_handle_s": None},
         WaitEstimate(900, surge=True, basis="fallback")),
        # A long fallback is the SLA target, not evidence of a surge.
        ({"depth_ahead": 0, "online_agents": 0, "median_handle_s": None, "fallback_s": 3600},
         WaitEstimate(3600, surge=False, basis="fallback")),
        # No history, clinicians online with room: someone can take it now, never a surge.
        ({"depth_ahead": 0, "online_agents": 1, "median_handle_s": None, "fallback_s": 3600,
          "free_slots": 4},
         WaitEstimate(300, surge=False, basis="free")),
        ({"depth_ahead": 2, "online_agents": 2, "median_handle_s": None, "free_slots": 3},
         WaitEstimate(300, surge=False, basis="free")),
        ({"depth_ahead": 0, "online_agents": 1, "median_handle_s": None, "fallback_s": 120,
          "free_slots": 1},
         WaitEstimate(120, surge=False, basis="free")),  # never longer than the target
        # Free slots no more than the queue ahead: the target again, still no surge.
        ({"depth_ahead": 3, "online_agents": 1, "median_handle_s": None, "fallback_s": 3600,
          "free_slots": 3},
         WaitEstimate(3600, surge=False, basis="fallback")),
        # Nobody online: free slots do not count.
        ({"depth_ahead": 0, "online_agents": 0, "median_handle_s": None, "free_slots": 3},
         WaitEstimate(900, surge=False, basis="fallback")),
        # A deep queue is live evidence, history or not.
        ({"depth_ahead": 12, "online_agents": 2, "median_handle_s": None, "free_slots": 0},
         WaitEstimate(900, surge=True, basis="fallback")),
        ({"depth_ahead": 1, "online_agents": 1, "median_handle_s": 600, "surge_threshold_s": 600},
         WaitEstimate(1200, surge=True, basis="live")),
        # Capped.
        ({"depth_ahead": 4, "online_agents": 1, "median_handle_s": 86_400},
         WaitEstimate(MAX_WAIT_S, surge=True, basis="live")),
    ],
)  # fmt: skip
def test_expected_wait(kwargs: dict[str, float], expected: WaitEstimate) -> None:
    assert expected_wait(**{"fallback_s": 900, **kwargs}) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"depth_ahead": -1, "online_agents": 1},
        {"depth_ahead": 0, "online_agents": -1},
        {"depth_ahead": 0, "online_agents": 1, "fallback_s": -5},
        {"depth_ahead": 0, "online_agents": 1, "fallback_s": float("inf")},
    ],
)
def test_expected_wait_rejects(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        expected_wait(**{"median_handle_s": 60, "fallback_s": 60, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "minutes"), [(0, 1), (1, 1), (59, 1), (60, 1), (61, 2), (600, 10), (601, 11)]
)
def test_wait_minutes(seconds: int, minutes: int) -> None:
    assert wait_minutes(WaitEstimate(seconds, surge=False, basis="live")) == minutes
