"""Read audit: every read of messages or a contact is recorded; admins list and export it;
it survives erasure anonymised and is part of the contact export."""

from __future__ import annotations

import csv
import io

import httpx
from sqlalchemy import select

from models import ReadAudit
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent
from tests.integration.desk.helpers import inbound

BOOKING = "Quiero cambiar la cita del jueves"


async def test_reads_are_recorded_with_who_when_and_where(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    l1_id, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="offline")
    sup_id, sup = await make_agent(rt, name="sup", role="supervisor", presence="offline")
    conv = await inbound(client, BOOKING, user="u1", msg="m1", name="Ana Ruiz")
    h = {**auth(l1), "User-Agent": "console/1.0"}
    assert (await client.get(f"/api/v1/conversations/{conv['id']}", headers=h)).is_success
    assert (await client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=h)).is_success
    assert (await client.get(f"/api/v1/contacts/{conv['contact_id']}", headers=h)).is_success
    assert (await client.get("/api/v1/search", params={"q": "cita"}, headers=h)).is_success
    r = await client.get(f"/api/v1/contacts/{conv['contact_id']}/export", headers=auth(sup))
    assert r.status_code == 200

    # A read that was refused is not a read.
    other = await inbound(client, "Me duele el pecho, ¿tomo la medicación?", user="u2", msg="m2")
    r = await client.get(f"/api/v1/conversations/{other['id']}/messages", headers=auth(l1))
    assert r.status_code == 404

    r = await client.get(
        "/api/v1/audit/reads", params={"contact_id": conv["contact_id"]}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    # (The admin token's reads of each new conversation, by the test's helper, are left out.)
    items = [i for i in r.json()["items"] if i["agent_id"] is not None]
    assert [(i["agent_id"], i["action"]) for i in items] == [
        (l1_id, "conversation"),
        (l1_id, "conversation.messages"),
        (l1_id, "contact"),
        (l1_id, "search"),
        (sup_id, "contact.export"),
    ]
    assert items[1]["conversation_id"] == conv["id"]
    assert items[1]["user_agent"] == "console/1.0"
    assert items[1]["client_ip"]
    assert items[3]["detail"] == "cita"
    other_reads = await client.get(
        "/api/v1/audit/reads", params={"contact_id": other["contact_id"]}, headers=ADMIN
    )
    assert [i["agent_id"] for i in other_reads.json()["items"]] == [None]  # the helper's

    exported = await client.get(
        "/api/v1/audit/reads/export", params={"contact_id": conv["contact_id"]}, headers=ADMIN
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["action"] for r in rows if r["agent_id"]] == [i["action"] for i in items]


async def test_only_admins_read_the_audit(client: httpx.AsyncClient, rt: Runtime) -> None:
    _, sup = await make_agent(rt, name="sup", role="supervisor", presence="offline")
    for path in ("/api/v1/audit/reads", "/api/v1/audit/reads/export"):
        r = await client.get(path, params={"contact_id": 1}, headers=auth(sup))
        assert r.status_code == 403


async def test_the_audit_survives_erasure_anonymised_and_is_in_the_export(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    l2_id, l2 = await make_agent(rt, name="l2", role="agent_l2", presence="offline")
    conv = await inbound(client, BOOKING, user="u1", msg="m1", name="Ana Ruiz")
    await client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=auth(l2))
    await client.get("/api/v1/search", params={"q": "Ana Ruiz"}, headers=auth(l2))
    export = await client.get(f"/api/v1/contacts/{conv['contact_id']}/export", headers=ADMIN)
    trail = export.json()["read_audit"]
    assert [(r["agent_id"], r["action"]) for r in trail if r["agent_id"]] == [
        (l2_id, "conversation.messages"),
        (l2_id, "search"),
    ]
    r = await client.delete(f"/api/v1/contacts/{conv['contact_id']}", headers=ADMIN)
    assert r.status_code == 200
    async with rt.db.session() as s:
        rows = list(
            await s.scalars(
                select(ReadAudit)
                .where(ReadAudit.contact_id == conv["contact_id"])
                .order_by(ReadAudit.id)
            )
        )
    # The trail stays: who, when, from where, which action; the query naming her goes.
    assert [(r.agent_id, r.action) for r in rows if r.agent_id][:2] == [
        (l2_id, "conversation.messages"),
        (l2_id, "search"),
    ]
    assert all("Ana" not in (r.detail or "") for r in rows)
    assert [r.detail for r in rows if r.action == "search"] == ["[erased]"]
