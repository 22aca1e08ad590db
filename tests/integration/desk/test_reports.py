"""Reports: volume, response times, SLA, satisfaction, crisis; JSON and CSV; managers only."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import httpx
import pytest

from models import Conversation
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent
from tests.integration.desk.helpers import inbound
from tests.support.fakes import FakeClock

BOOKING = "Quiero cambiar la cita del jueves"
CRISIS = "Ya no quiero vivir, esta noche me voy a quitar la vida"


async def _report(client: httpx.AsyncClient, name: str, **params: str) -> dict[str, object]:
    r = await client.get(f"/api/v1/reports/{name}", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_reports_count_what_happened(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    l2_id, l2 = await make_agent(rt, name="l2", role="agent_l2", languages=["es"])
    start = clock.now
    booking = await inbound(client, BOOKING, user="u1", msg="m1")
    crisis = await inbound(client, CRISIS, user="u2", msg="m2")
    assert "crisis" in crisis["tags"]
    clock.advance(seconds=120)
    r = await client.post(
        f"/api/v1/conversations/{crisis['id']}/messages",
        json={"text": "Estoy aquí"},
        headers=auth(l2),
    )
    assert r.status_code == 201
    r = await client.post(
        f"/api/v1/conversations/{booking['id']}/messages", json={"text": "Claro"}, headers=ADMIN
    )
    assert r.status_code == 201
    clock.advance(seconds=60)
    r = await client.post(
        f"/api/v1/conversations/{booking['id']}/status", json={"status": "resolved"}, headers=ADMIN
    )
    assert r.status_code == 200
    async with rt.db.session() as s:
        c = await s.get(Conversation, booking["id"])
        assert c is not None
        c.csat = 4
    window = {
        "from": (start - timedelta(hours=1)).isoformat(),
        "to": (clock.now + timedelta(hours=1)).isoformat(),
    }

    volume = await _report(client, "volume", **window)
    assert volume["by_channel"] == {"app": 2}
    assert volume["by_queue"] == {"first_line": 1, "second_line": 1}
    assert sum(r["inbound_messages"] for r in volume["rows"]) == 2  # type: ignore[attr-defined]
    assert all(r["hour"].endswith(":00:00Z") for r in volume["rows"])  # type: ignore[attr-defined]
    only_l1 = await _report(client, "volume", queue="first_line", **window)
    assert only_l1["by_queue"] == {"first_line": 1}

    times = await _report(client, "response-times", **window)
    rows = {(r["queue"], r["metric"]): r for r in times["rows"]}  # type: ignore[attr-defined]
    assert rows[("first_line", "first_response")]["p50_s"] == 120.0
    assert rows[("first_line", "resolution")]["p50_s"] == 180.0
    assert rows[("all", "first_response")]["count"] == 2

    sla = await _report(client, "sla", **window)
    first = [r for r in sla["rows"] if r["queue"] == "first_line" and r["kind"] == "first_response"]  # type: ignore[attr-defined]
    assert first[0]["met"] == 1
    assert first[0]["compliance"] == 1.0

    sat = await _report(client, "satisfaction", **window)
    assert {r["queue"]: r["average"] for r in sat["rows"]} == {"first_line": 4.0, "all": 4.0}  # type: ignore[attr-defined]

    cr = await _report(client, "crisis", **window)
    row = cr["rows"][0]  # type: ignore[index]
    assert row["urgent_conversations"] == 1
    assert row["answered"] == 1
    assert row["first_clinician_reply_p50_s"] == 120.0

    r = await client.get("/api/v1/reports/sla", params={**window, "format": "csv"}, headers=ADMIN)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(r.text)))
    assert {"queue", "priority", "kind", "met", "breached", "compliance"} <= set(parsed[0])
    for name in ("volume", "response-times", "sla", "satisfaction", "crisis"):
        r = await client.get(
            f"/api/v1/reports/{name}", params={**window, "format": "svg"}, headers=ADMIN
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("image/svg+xml")
        assert r.text.startswith("<svg")
        assert "<script" not in r.text
    assert l2_id


async def test_reports_are_for_supervisors_and_admins(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, l2 = await make_agent(rt, name="l2", role="agent_l2", presence="offline")
    _, sup = await make_agent(rt, name="sup", role="supervisor", presence="offline")
    for name in ("volume", "response-times", "sla", "satisfaction", "crisis"):
        assert (await client.get(f"/api/v1/reports/{name}", headers=auth(l2))).status_code == 403
        r = await client.get(f"/api/v1/reports/{name}?format=csv", headers=auth(sup))
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        {"from": "2026-01-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"},  # over 92 days
        {"from": "2026-01-01T00:00:00"},  # no time zone
        {"from": "yesterday"},
        {"queue": "third_line"},
        {"channel": "fax"},
        {"format": "xlsx"},
    ],
)
async def test_bad_report_parameters_are_clear_4xx(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    r = await client.get("/api/v1/reports/volume", params=params, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.get("/api/v1/reports/nothing", headers=ADMIN)
    assert r.status_code == 422


def test_svg_escapes_labels_and_percentiles_are_nearest_rank() -> None:
    from router.read import reports

    svg = reports.svg_bars("<b>t</b>", [("<script>alert(1)</script>", 3.0), ("b", 1.0)])
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert reports.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert reports.percentile([1.0, 2.0, 3.0, 4.0], 95) == 4.0
    assert reports.percentile([], 50) is None
