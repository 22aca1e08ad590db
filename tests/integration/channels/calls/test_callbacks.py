"""Callback requests: collapse, SLA breach once, agent outcomes with backoff, visibility."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import select

from models import Event, SlaTimer
from router.flows.callbacks import fire_due_callbacks
from router.runtime import Runtime
from router.workers.callbacks import run_scheduler
from tests.conftest import ADMIN, auth, make_agent
from tests.integration.channels.calls.support import (
    callbacks_of,
    event_types,
    generic_record,
    post_generic,
    post_twilio,
    twilio_params,
)
from tests.support.fakes import FakeClock


async def missed(
    client: httpx.AsyncClient, clock: FakeClock, sid: str, name: str = "status_no_answer"
) -> int:
    r = await post_twilio(client, twilio_params(name, clock, CallSid=sid))
    assert r.status_code == 200, r.text
    return int(r.json()["conversation_id"])


async def test_missed_calls_from_one_number_collapse(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    conv1 = await missed(calls_client, clock, "CA01")
    first_due = (await callbacks_of(calls_rt))[0].due_at
    clock.advance(minutes=2)
    conv2 = await missed(calls_client, clock, "CA02", "status_busy")
    clock.advance(minutes=2)
    conv3 = await missed(calls_client, clock, "CA03", "transcription_voicemail")
    assert conv1 == conv2 == conv3
    (cb,) = await callbacks_of(calls_rt)
    assert cb.missed_count == 3
    assert cb.last_call_status == "voicemail"
    assert cb.due_at == first_due, "later calls never push the deadline back"
    assert await event_types(calls_rt) == [
        "callback.requested",
        "callback.bumped",
        "callback.bumped",
    ]
    listed = (await calls_client.get("/api/v1/callbacks", headers=ADMIN)).json()["items"]
    assert [(c["id"], c["missed_count"], c["queue"]) for c in listed] == [(cb.id, 3, "first_line")]


async def test_callback_sla_breach_is_recorded_once_per_deadline(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    await missed(calls_client, clock, "CA01")
    (cb,) = await callbacks_of(calls_rt)
    assert cb.due_at == clock.now + timedelta(minutes=10)  # first_line high: 10 min
    clock.advance(minutes=9)
    assert await fire_due_callbacks(calls_rt) == 0
    sla = (await calls_client.get("/api/v1/callbacks", headers=ADMIN)).json()["items"][0]["sla"]
    assert sla["state"] == "running"
    assert sla["time_left_s"] == 60
    clock.advance(minutes=1)
    assert await fire_due_callbacks(calls_rt) == 1
    assert await fire_due_callbacks(calls_rt) == 0
    clock.advance(minutes=30)
    assert await fire_due_callbacks(calls_rt) == 0
    assert (await event_types(calls_rt)).count("callback.breached") == 1
    item = (await calls_client.get("/api/v1/callbacks", headers=ADMIN)).json()["items"][0]
    assert item["sla"]["state"] == "breached"
    # A no-answer attempt arms a new deadline (retry in 15 min + 10 min), reported once again.
    r = await calls_client.post(
        f"/api/v1/callbacks/{item['id']}/outcome", json={"outcome": "no_answer"}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    assert r.json()["sla"]["state"] == "running"
    clock.advance(minutes=24)
    assert await fire_due_callbacks(calls_rt) == 0
    clock.advance(minutes=1)
    assert await fire_due_callbacks(calls_rt) == 1
    assert (await event_types(calls_rt)).count("callback.breached") == 2


async def test_no_answer_backs_off_then_gives_up(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    await missed(calls_client, clock, "CA01")
    (cb,) = await callbacks_of(calls_rt)
    url = f"/api/v1/callbacks/{cb.id}/outcome"
    waits = []
    for _ in range(2):
        r = (await calls_client.post(url, json={"outcome": "no_answer"}, headers=ADMIN)).json()
        assert r["status"] == "open"
        (row,) = await callbacks_of(calls_rt)
        assert row.next_attempt_at is not None
        waits.append(row.next_attempt_at - clock.now)
    assert waits == [timedelta(minutes=15), timedelta(hours=1)]
    r = await calls_client.post(
        url, json={"outcome": "no_answer", "note": "voicemail full"}, headers=ADMIN
    )
    body = r.json()
    assert (body["status"], body["attempts"], body["note"]) == ("no_answer", 3, "voicemail full")
    again = await calls_client.post(url, json={"outcome": "done"}, headers=ADMIN)
    assert again.status_code == 409
    # closed requests leave the default (open) list but stay queryable
    assert (await calls_client.get("/api/v1/callbacks", headers=ADMIN)).json()["items"] == []
    closed = await calls_client.get("/api/v1/callbacks?status=no_answer", headers=ADMIN)
    assert [c["id"] for c in closed.json()["items"]] == [cb.id]


async def test_done_closes_and_stops_the_response_clock(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    agent_id, token = await make_agent(calls_rt, name="l1", role="agent_l1")
    conv_id = await missed(calls_client, clock, "CA01")
    (cb,) = await callbacks_of(calls_rt)
    clock.advance(minutes=3)
    r = await calls_client.post(
        f"/api/v1/callbacks/{cb.id}/outcome",
        json={"outcome": "done", "note": "rebooked"},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["closed_by_agent_id"]) == ("done", agent_id)
    assert body["sla"]["state"] == "met"
    async with calls_rt.db.session() as s:
        fr = await s.scalar(
            select(SlaTimer).where(
                SlaTimer.conversation_id == conv_id, SlaTimer.kind == "first_response"
            )
        )
        assert fr is not None
        assert fr.state == "stopped"
    # a new missed call opens a fresh request in the same conversation
    await missed(calls_client, clock, "CA02")
    assert [c.status for c in await callbacks_of(calls_rt)] == ["done", "open"]


async def test_wrong_number(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    await missed(calls_client, clock, "CA01")
    (cb,) = await callbacks_of(calls_rt)
    r = await calls_client.post(
        f"/api/v1/callbacks/{cb.id}/outcome", json={"outcome": "wrong_number"}, headers=ADMIN
    )
    assert r.json()["status"] == "wrong_number"
    bad = await calls_client.post(
        f"/api/v1/callbacks/{cb.id}/outcome", json={"outcome": "maybe"}, headers=ADMIN
    )
    assert bad.status_code == 422
    missing = await calls_client.post(
        "/api/v1/callbacks/999/outcome", json={"outcome": "done"}, headers=ADMIN
    )
    assert missing.status_code == 404


async def test_outbound_call_closes_or_counts_an_attempt(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    await missed(calls_client, clock, "CA01")
    clock.advance(minutes=4)
    await post_twilio(calls_client, twilio_params("outbound_no_answer", clock))
    (cb,) = await callbacks_of(calls_rt)
    assert (cb.status, cb.attempts) == ("open", 1)
    clock.advance(minutes=20)
    await post_twilio(calls_client, twilio_params("outbound_completed", clock))
    (cb,) = await callbacks_of(calls_rt)
    assert cb.status == "done"
    async with calls_rt.db.session() as s:
        closed = await s.scalar(select(Event).where(Event.type == "callback.closed"))
        assert closed is not None
        assert closed.data["via"] == "call"


async def test_resolved_conversation_cancels_instead_of_breaching(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    conv_id = await missed(calls_client, clock, "CA01")
    r = await calls_client.post(
        f"/api/v1/conversations/{conv_id}/status", json={"status": "resolved"}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    clock.advance(hours=1)
    assert await fire_due_callbacks(calls_rt) == 0
    (cb,) = await callbacks_of(calls_rt)
    assert cb.status == "cancelled"


async def test_first_line_agent_cannot_see_second_line_callbacks(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    _, l1 = await make_agent(calls_rt, name="l1", role="agent_l1", presence="offline")
    _, l2 = await make_agent(calls_rt, name="l2", role="agent_l2", presence="offline")
    await missed(calls_client, clock, "CA01")  # first_line
    crisis = generic_record("voicemail_crisis_es", **{"from": "+34699112233"})
    assert (await post_generic(calls_client, crisis)).status_code == 200  # second_line
    front, clinical = await callbacks_of(calls_rt)
    seen_l1 = (await calls_client.get("/api/v1/callbacks", headers=auth(l1))).json()["items"]
    seen_l2 = (await calls_client.get("/api/v1/callbacks", headers=auth(l2))).json()["items"]
    assert [c["id"] for c in seen_l1] == [front.id]
    assert {c["id"] for c in seen_l2} == {front.id, clinical.id}
    by_queue = await calls_client.get("/api/v1/callbacks?queue=second_line", headers=auth(l2))
    assert [c["id"] for c in by_queue.json()["items"]] == [clinical.id]
    r = await calls_client.post(
        f"/api/v1/callbacks/{clinical.id}/outcome", json={"outcome": "done"}, headers=auth(l1)
    )
    assert r.status_code == 404
    assert (await calls_client.get("/api/v1/callbacks")).status_code == 401


async def test_list_pages_with_a_cursor(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    for i in range(3):
        rec = generic_record("missed_national", call_id=f"c{i}", **{"from": f"+3469911220{i}"})
        assert (await post_generic(calls_client, rec)).status_code == 200
    first = (await calls_client.get("/api/v1/callbacks?limit=2", headers=ADMIN)).json()
    assert len(first["items"]) == 2
    rest = (
        await calls_client.get(
            f"/api/v1/callbacks?limit=2&cursor={first['next_cursor']}", headers=ADMIN
        )
    ).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None


async def test_scheduler_loop_fires_and_stops(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    await missed(calls_client, clock, "CA01")
    clock.advance(minutes=11)
    stop = asyncio.Event()
    calls_rt.settings = calls_rt.settings.model_copy(update={"worker_poll_s": 0.01})
    task = asyncio.create_task(run_scheduler(calls_rt, stop))
    for _ in range(200):
        if "callback.breached" in await event_types(calls_rt):
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert (await event_types(calls_rt)).count("callback.breached") == 1
