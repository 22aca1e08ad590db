"""Routing in the pipeline: crisis handling, language-aware assignment, presence changes,
the offline grace period and the expected-wait acknowledgement."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from models import Event, Message
from router.runtime import Runtime
from router.workers.sweeper import OFFLINE_GRACE, Sweeper
from tests.conftest import ADMIN, auth, make_agent
from tests.support.factories import app_inbound as inbound
from tests.support.fakes import FakeClock


async def outbound(rt: Runtime, cid: int) -> list[Message]:
    async with rt.db.session() as s:
        rows = await s.scalars(
            select(Message)
            .where(Message.conversation_id == cid, Message.direction == "out")
            .order_by(Message.id)
        )
        return list(rows)


async def test_crisis_goes_to_clinicians_urgently_with_a_safe_acknowledgement(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    cid = await inbound(client, "u1", "m1", "ya no quiero seguir viviendo, nada tiene sentido")
    conv = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    assert (conv["queue"], conv["priority"]) == ("second_line", "urgent")
    assert "crisis" in conv["tags"]
    async with rt.db.session() as s:
        types = list(await s.scalars(select(Event.type).where(Event.conversation_id == cid)))
    assert types.count("crisis.detected") == 1
    sent = await outbound(rt, cid)
    assert [m.kind for m in sent] == ["crisis_ack"], "the calm acknowledgement, not a wait time"
    assert "112" in sent[0].text, "points to emergency services in the customer's language"
    # A second message in the same crisis does not repeat the alert or the acknowledgement.
    await inbound(client, "u1", "m2", "no sé qué hacer, quiero hacerme daño")
    async with rt.db.session() as s:
        types = list(await s.scalars(select(Event.type).where(Event.conversation_id == cid)))
    assert types.count("crisis.detected") == 1
    assert [m.kind for m in await outbound(rt, cid)] == ["crisis_ack"]


async def test_a_booking_that_turns_clinical_moves_up_never_down(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    cid = await inbound(client, "u1", "m1", "Quiero cambiar mi cita del jueves")
    assert (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()["queue"] == (
        "first_line"
    )
    await inbound(client, "u1", "m2", "y también: ¿puedo tomar ibuprofeno con el antibiótico?")
    conv = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    assert conv["queue"] == "second_line"
    await inbound(client, "u1", "m3", "gracias, ¿y a qué hora abren?")
    conv = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    assert conv["queue"] == "second_line", "never moves down automatically"


async def test_assigned_to_an_agent_who_speaks_the_language(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    es_id, _ = await make_agent(rt, name="es", role="agent_l1", languages=["es"])
    ru_id, _ = await make_agent(rt, name="ru", role="agent_l1", languages=["ru"])
    ru_conv = await inbound(client, "u1", "m1", "Здравствуйте, хочу перенести запись на пятницу")
    es_conv = await inbound(client, "u2", "m2", "Hola, quiero cambiar mi cita del jueves")
    ru = (await client.get(f"/api/v1/conversations/{ru_conv}", headers=ADMIN)).json()
    es = (await client.get(f"/api/v1/conversations/{es_conv}", headers=ADMIN)).json()
    assert (ru["language"], ru["assignee_id"]) == ("ru", ru_id)
    assert (es["language"], es["assignee_id"]) == ("es", es_id)


async def test_coming_online_pulls_waiting_work_urgent_first(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    aid, token = await make_agent(rt, name="l2", role="agent_l2", capacity=1, presence="offline")
    normal = await inbound(client, "u1", "m1", "¿Puedo tomar paracetamol con la medicación?")
    clock.advance(minutes=1)
    crisis = await inbound(client, "u2", "m2", "quiero quitarme la vida")
    r = await client.put(
        f"/api/v1/agents/{aid}/presence", json={"presence": "online"}, headers=auth(token)
    )
    assert r.status_code == 200
    got = {
        cid: (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()["assignee_id"]
        for cid in (normal, crisis)
    }
    assert got == {crisis: aid, normal: None}, "capacity 1: the urgent one first, though younger"


async def test_offline_agent_hands_back_after_the_grace_period(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    aid, token = await make_agent(rt, name="l1", role="agent_l1")
    cid = await inbound(client, "u1", "m1", "Quiero cambiar mi cita")
    assert (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()[
        "assignee_id"
    ] == aid
    await client.put(
        f"/api/v1/agents/{aid}/presence", json={"presence": "offline"}, headers=auth(token)
    )
    await Sweeper(rt).run_once()
    assert (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()[
        "assignee_id"
    ] == aid
    clock.advance(seconds=OFFLINE_GRACE.total_seconds() + 1)
    await Sweeper(rt).run_once()
    assert (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()[
        "assignee_id"
    ] is None


async def test_acknowledgement_tells_the_wait_and_warns_in_a_surge(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    first = await inbound(client, "u0", "m0", "Quiero cambiar mi cita")
    ack = (await outbound(rt, first))[0]
    assert ack.kind == "ack"
    assert "15" in ack.text, "no agents online: falls back to the first-response target (15 min)"
    for i in range(1, 12):
        await inbound(client, f"u{i}", f"m{i}", "Quiero cambiar mi cita")
    await make_agent(rt, name="l1", role="agent_l1", capacity=0)  # online, but full
    late = await inbound(client, "late", "late", "Quiero cambiar mi cita")
    surge_ack = (await outbound(rt, late))[0]
    assert surge_ack.text != ack.text
    assert "http" in surge_ack.text, "a surge message points to self-service links"
