"""SLA timers in the database: armed with the conversation, warned, breached once, paused,
resumed, and fired exactly once by concurrent schedulers."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from sqlalchemy import select

from models import Conversation, Event
from models.messages import InboundMessage, Sender
from router.flows import ingest
from router.runtime import Runtime
from router.workers.sla import SlaScheduler
from tests.conftest import ADMIN, make_agent
from tests.support.factories import app_inbound as inbound
from tests.support.fakes import FakeClock


async def sla_events(rt: Runtime, conv_id: int | None = None) -> list[tuple[str, str]]:
    async with rt.db.session() as s:
        stmt = select(Event).where(Event.type.in_(("sla.warning", "sla.breached")))
        if conv_id is not None:
            stmt = stmt.where(Event.conversation_id == conv_id)
        return [(e.type, e.data["kind"]) for e in await s.scalars(stmt.order_by(Event.id))]


async def test_warn_then_breach_once_with_policy_action(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    cid = await inbound(client, "u1", "m1", "Quiero cambiar mi cita")  # first_line, normal: 15 min
    sched = SlaScheduler(rt)
    clock.advance(minutes=11)
    await sched.run_once()
    assert await sla_events(rt, cid) == []
    clock.advance(minutes=1, seconds=1)  # 80 % of 15 min
    await sched.run_once()
    assert await sla_events(rt, cid) == [("sla.warning", "first_response")]
    clock.advance(minutes=3)
    await sched.run_once()
    await sched.run_once()
    assert await sla_events(rt, cid) == [
        ("sla.warning", "first_response"),
        ("sla.breached", "first_response"),
    ]
    conv = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    assert conv["priority"] == "high", "first_line breach raises the priority one step"
    async with rt.db.session() as s:
        alerts = list(await s.scalars(select(Event.type).where(Event.type == "supervisor.alert")))
    assert alerts == ["supervisor.alert"]


async def test_pending_pauses_the_clock(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    cid = await inbound(client, "u1", "m1", "Quiero cambiar mi cita")
    clock.advance(minutes=5)
    await client.post(
        f"/api/v1/conversations/{cid}/status", json={"status": "pending"}, headers=ADMIN
    )
    clock.advance(hours=30)  # waiting on the customer: no SLA runs
    await SlaScheduler(rt).run_once()
    assert await sla_events(rt, cid) == []
    await inbound(client, "u1", "m2", "Perdón, ya estoy")
    conv = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    first = next(t for t in conv["sla"] if t["kind"] == "first_response")
    assert first["state"] == "running"
    assert 9 * 60 <= first["time_left_s"] <= 10 * 60 + 1, "10 of 15 minutes were left"


async def test_restart_fires_overdue_timers_immediately(rt: Runtime, clock: FakeClock) -> None:
    await _ingest_many(rt, 3)
    clock.advance(days=3)  # the service was down for days
    await SlaScheduler(rt).run_once()
    got = Counter(await sla_events(rt))
    # Overdue: straight to breach, no stale warning first.
    assert got == {("sla.breached", "first_response"): 3, ("sla.breached", "resolution"): 3}


async def _ingest_many(rt: Runtime, n: int) -> None:
    for i in range(n):
        async with rt.db.session() as s:
            await ingest.ingest(
                s,
                rt,
                InboundMessage(
                    channel="app",
                    external_id=f"bulk-{i}",
                    sender=Sender(external_id=f"user-{i}"),
                    text="Necesito cambiar la cita",
                    received_at=rt.now(),
                ),
            )


async def test_two_schedulers_fire_each_timer_exactly_once(
    rt: Runtime, clock: FakeClock, backend: str
) -> None:
    # 1,000 timers on PostgreSQL (the multi-instance backend); fewer on the embedded default.
    n = 500 if backend == "postgresql" else 100
    await _ingest_many(rt, n)
    clock.advance(days=3)
    s1, s2 = SlaScheduler(rt, batch=20), SlaScheduler(rt, batch=20)

    async def loop(s: SlaScheduler) -> None:
        while await s.run_once():
            pass

    await asyncio.gather(loop(s1), loop(s2))
    async with rt.db.session() as s:
        rows = list(
            await s.scalars(select(Event).where(Event.type == "sla.breached").order_by(Event.id))
        )
    per_timer = Counter((e.conversation_id, e.data["kind"]) for e in rows)
    assert len(per_timer) == 2 * n
    assert set(per_timer.values()) == {1}


async def test_breached_first_response_is_offered_to_the_next_tier(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    l2_id, _ = await make_agent(rt, name="dr", role="agent_l2")
    cid = await inbound(client, "u1", "m1", "Quiero cambiar mi cita")
    conv = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    assert (conv["queue"], conv["assignee_id"]) == ("first_line", None), "no L1 agent online"
    clock.advance(minutes=16)
    await SlaScheduler(rt).run_once()
    conv = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    assert conv["queue"] == "first_line"
    assert conv["assignee_id"] == l2_id


async def test_urgent_first_line_breach_escalates_to_second_line(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    cid = await inbound(client, "u1", "m1", "Quiero cambiar mi cita")
    async with rt.db.session() as s:
        conv = await s.get(Conversation, cid)
        assert conv is not None
        conv.priority = "urgent"
    clock.advance(minutes=16)  # past even the normal target
    await SlaScheduler(rt).run_once()
    out = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    assert (out["queue"], out["priority"]) == ("second_line", "urgent")
    assert any("SLA breach" in r for r in out["routing_reasons"])
    async with rt.db.session() as s:
        types = list(await s.scalars(select(Event.type).where(Event.conversation_id == cid)))
    assert "conversation.escalated" in types
