"""The read models the console added to the API: activity, crises, wallboard; presence."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from models import Agent, StaffSession
from router.console import presence
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent
from tests.integration.console.test_console_auth import (
    BOOKING,
    new_conv,
    no_csrf,
    sign_in,
    staff,
)
from tests.support.fakes import FakeClock

CRISIS = "quiero quitarme la vida"


async def test_crises_stay_open_until_someone_takes_them(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    l2_id, l2 = await make_agent(rt, name="Dr", role="agent_l2", presence="away")
    _, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="away")
    crisis = await new_conv(client, CRISIS, "c1", "m1")
    await new_conv(client, BOOKING, "c2", "m2")
    r = await client.get("/api/v1/crises", headers=auth(l2))
    assert r.status_code == 200, r.text
    [item] = r.json()
    assert item["conversation"]["id"] == crisis
    assert item["taken"] is False
    assert item["holder_id"] is None
    assert (await client.get("/api/v1/crises", headers=auth(l1))).status_code == 403
    assert (
        await client.post(f"/api/v1/conversations/{crisis}/claim", headers=auth(l2))
    ).status_code == 200
    [item] = (await client.get("/api/v1/crises", headers=auth(l2))).json()
    assert item["taken"] is True
    assert item["holder_id"] == l2_id
    assert item["holder_name"] == "Dr"


async def test_an_auto_assigned_crisis_is_taken_once_its_holder_replies(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    l2_id, l2 = await make_agent(rt, name="Dr", role="agent_l2", languages=["es"])
    crisis = await new_conv(client, CRISIS, "c1", "m1")
    [item] = (await client.get("/api/v1/crises", headers=auth(l2))).json()
    assert item["holder_id"] == l2_id
    assert item["taken"] is False  # routing gave it; no person has taken it yet
    r = await client.post(
        f"/api/v1/conversations/{crisis}/messages", json={"text": "Estoy aquí"}, headers=auth(l2)
    )
    assert r.status_code == 201
    [item] = (await client.get("/api/v1/crises", headers=auth(l2))).json()
    assert item["taken"] is True


async def test_activity_has_the_events_with_reasons_and_hides_second_line(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="away")
    _, l2 = await make_agent(rt, name="l2", role="agent_l2", presence="away")
    conv = await new_conv(client, BOOKING, "c1", "m1")
    assert (
        await client.post(f"/api/v1/conversations/{conv}/claim", headers=auth(l1))
    ).status_code == 200
    r = await client.get(f"/api/v1/conversations/{conv}/activity", headers=auth(l1))
    assert r.status_code == 200
    types = [e["type"] for e in r.json()["events"]]
    assert types[:2] == ["conversation.created", "conversation.routed"]
    assert "conversation.assigned" in types
    routed = next(e for e in r.json()["events"] if e["type"] == "conversation.routed")
    assert routed["data"]["reasons"]
    assert r.json()["callbacks"] == []
    r = await client.post(
        f"/api/v1/conversations/{conv}/escalate", json={"reason": "medication"}, headers=auth(l1)
    )
    assert r.status_code == 200
    assert (
        await client.get(f"/api/v1/conversations/{conv}/activity", headers=auth(l1))
    ).status_code in (404, 410)
    r = await client.get(f"/api/v1/conversations/{conv}/activity", headers=auth(l2))
    assert "conversation.escalated" in [e["type"] for e in r.json()["events"]]
    r = await client.get("/api/v1/conversations/999999/activity", headers=ADMIN)
    assert r.status_code == 404


async def test_the_wallboard_counts_follow_the_queues(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, sup = await make_agent(rt, name="sup", role="supervisor", presence="offline")
    _, l2 = await make_agent(rt, name="l2", role="agent_l2", presence="away")
    w = (await client.get("/api/v1/wallboard", headers=auth(sup))).json()
    depth = {q["name"]: q["depth"] for q in w["queues"]}
    assert depth == {"first_line": 0, "second_line": 0}
    await new_conv(client, BOOKING, "c1", "m1")
    crisis = await new_conv(client, CRISIS, "c2", "m2")
    w = (await client.get("/api/v1/wallboard", headers=auth(sup))).json()
    assert {q["name"]: q["depth"] for q in w["queues"]} == {"first_line": 1, "second_line": 1}
    assert [c["conversation"]["id"] for c in w["crises"]] == [crisis]
    assert {a["name"] for a in w["agents"]} == {"sup", "l2"}
    assert w["recent_breaches"] == []
    assert (await client.get("/api/v1/wallboard", headers=auth(l2))).status_code == 403


async def test_a_closed_console_tab_turns_online_into_away_after_the_grace_period(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    agent_id, _ = await staff(client, rt, "ana@clinic.example")
    other_id, _ = await make_agent(rt, name="api only", role="agent_l1")  # online, no console
    h = await sign_in(client, "ana@clinic.example")
    assert (await client.post("/console/api/heartbeat", headers=h)).status_code == 204
    clock.advance(seconds=100)
    assert await presence.sweep(rt) == []
    assert (await client.post("/console/api/heartbeat", headers=h)).status_code == 204
    clock.advance(seconds=119)
    assert await presence.sweep(rt) == []
    clock.advance(seconds=2)  # 121 s without a heartbeat: the tab is gone
    assert await presence.sweep(rt) == [agent_id]
    async with rt.db.session() as s:
        assert (await s.get(Agent, agent_id)).presence == "away"  # type: ignore[union-attr]
        assert (await s.get(Agent, other_id)).presence == "online"  # type: ignore[union-attr]
        beats = await s.scalars(select(StaffSession.heartbeat_at))
        assert list(beats) == [None]
    # Back online through the API alone: the old tab does not set them away again.
    r = await client.put(
        f"/api/v1/agents/{agent_id}/presence", json={"presence": "online"}, headers=h
    )
    assert r.status_code == 200
    clock.advance(seconds=600)
    assert await presence.sweep(rt) == []
    assert (await client.get("/api/v1/agents/me", headers=no_csrf(h))).json()["presence"] == (
        "online"
    )


async def test_docs_work_offline_with_a_bearer_scheme(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    js = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200
    assert len(js.content) > 100_000
    assert (await client.get("/docs/assets/swagger-ui.css")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An agent's or integration's API token (or CARELINE_ADMIN_TOKEN)",
    }
    assert schema["paths"]["/api/v1/conversations"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]
