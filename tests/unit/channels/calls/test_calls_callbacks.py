"""Pure parts of the callback service: retry backoff and the SLA view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models import CallbackRequest
from router.decide.callbacks import retry_delay, sla_view

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("attempts", "minutes"), [(0, 15), (1, 15), (2, 60), (3, 240), (9, 240)])
def test_retry_backoff_grows_then_caps(attempts: int, minutes: int) -> None:
    assert retry_delay(attempts) == timedelta(minutes=minutes)


def _cb(**kw: object) -> CallbackRequest:
    base: dict[str, object] = {
        "status": "open",
        "due_at": NOW + timedelta(minutes=10),
        "breached_at": None,
        "closed_at": None,
    }
    base.update(kw)
    return CallbackRequest(**base)


def test_sla_view() -> None:
    running = sla_view(_cb(), NOW)
    assert (running.state, running.time_left_s) == ("running", 600)
    assert sla_view(_cb(), NOW + timedelta(minutes=11)).state == "breached"
    assert sla_view(_cb(breached_at=NOW), NOW).state == "breached"
    met = sla_view(_cb(status="done", closed_at=NOW + timedelta(minutes=5)), NOW)
    assert (met.state, met.time_left_s) == ("met", None)
    late = sla_view(_cb(status="done", closed_at=NOW + timedelta(minutes=30)), NOW)
    assert late.state == "stopped"
