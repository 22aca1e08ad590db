"""Health-data rights: export everything about a person; erase it, keeping an anonymous trail."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from models import Event, Message, OutboxItem
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent

SECRET = "tengo VIH y necesito la receta 93f1"


async def seed(client: httpx.AsyncClient) -> tuple[int, int]:
    body = {
        "contact": {
            "external_id": "pat-1",
            "name": "Ana García",
            "phone": "+34612345678",
            "verified": True,
        },
        "message": {"external_id": "m1", "text": SECRET},
    }
    r = await client.post("/api/v1/inbound", json=body, headers=ADMIN)
    cid = r.json()["conversation_id"]
    await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"text": "Le ayudamos"}, headers=ADMIN
    )
    conv = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    return cid, conv["contact_id"]


async def test_export_holds_everything_about_the_person(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    cid, contact_id = await seed(client)
    r = await client.get(f"/api/v1/contacts/{contact_id}/export", headers=ADMIN)
    assert r.status_code == 200
    data = r.json()
    assert data["contact"]["name"] == "Ana García"
    assert {(i["kind"], i["value"]) for i in data["identities"]} == {
        ("app", "pat-1"),
        ("phone", "+34612345678"),
    }
    texts = [m["text"] for c in data["conversations"] for m in c["messages"]]
    assert SECRET in texts
    assert "Le ayudamos" in texts
    assert any(e["type"] == "conversation.created" for e in data["events"])


async def test_erase_removes_personal_data_and_keeps_an_anonymous_trail(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, l2 = await make_agent(rt, name="dr", role="agent_l2")
    cid, contact_id = await seed(client)
    assert (
        await client.delete(f"/api/v1/contacts/{contact_id}", headers=auth(l2))
    ).status_code == 403
    r = await client.delete(f"/api/v1/contacts/{contact_id}", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["erased"]["identities"] == 2

    contact = (await client.get(f"/api/v1/contacts/{contact_id}", headers=ADMIN)).json()
    assert contact["name"] is None
    assert contact["identities"] == []
    msgs = (await client.get(f"/api/v1/conversations/{cid}/messages", headers=ADMIN)).json()
    assert msgs["items"], "the history keeps its shape"
    assert all(m["text"] == "[erased]" for m in msgs["items"])
    async with rt.db.session() as s:
        texts = list(await s.scalars(select(Message.text)))
        statuses = set(await s.scalars(select(OutboxItem.status)))
        types = list(await s.scalars(select(Event.type)))
    assert SECRET not in texts
    assert statuses == {"dead"}, "nothing queued for the person goes out after erasure"
    assert "contact.erased" in types
    assert "conversation.created" in types

    # The same person writing again is a new, unlinked contact.
    again = await client.post(
        "/api/v1/inbound",
        json={
            "contact": {"external_id": "pat-1"},
            "message": {"external_id": "m2", "text": "hola"},
        },
        headers=ADMIN,
    )
    new_conv = (
        await client.get(f"/api/v1/conversations/{again.json()['conversation_id']}", headers=ADMIN)
    ).json()
    assert new_conv["contact_id"] != contact_id
