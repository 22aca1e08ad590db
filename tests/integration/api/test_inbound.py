"""The app channel end to end: auth, validation, de-dup, contacts, threading, reopen window."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from models import Contact, Conversation, Message, OutboxItem
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent
from tests.support.factories import count_rows as count
from tests.support.fakes import FakeClock


def body(
    user: str = "u1", msg: str = "m1", text: str = "Hola, quiero reservar una cita", **contact: Any
) -> dict[str, Any]:
    return {
        "contact": {"external_id": user, **contact},
        "message": {"external_id": msg, "text": text},
    }


async def test_inbound_creates_routed_conversation_and_acknowledges(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    r = await client.post("/api/v1/inbound", json=body(), headers=ADMIN)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["duplicate"] is False
    conv = (
        await client.get(f"/api/v1/conversations/{out['conversation_id']}", headers=ADMIN)
    ).json()
    assert conv["status"] == "open"
    assert conv["queue"] == "first_line"
    assert conv["channel"] == "app"
    assert conv["routing_reasons"], "every routing decision carries its reasons"
    assert {t["kind"] for t in conv["sla"]} >= {"first_response", "resolution"}
    msgs = (await client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=ADMIN)).json()
    kinds = [(m["direction"], m["kind"]) for m in msgs["items"]]
    assert kinds[0] == ("in", "text")
    assert ("out", "ack") in kinds, "a new conversation is told the expected wait"
    assert await count(rt, OutboxItem) == 1


async def test_same_external_id_twice_is_one_message(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    first = (await client.post("/api/v1/inbound", json=body(), headers=ADMIN)).json()
    second = await client.post("/api/v1/inbound", json=body(), headers=ADMIN)
    assert second.status_code == 200
    assert second.json() == {**first, "duplicate": True}
    async with rt.db.session() as s:
        n = await s.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    assert n == 1


async def test_twenty_concurrent_copies_store_exactly_one(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    results = await asyncio.gather(
        *(
            client.post("/api/v1/inbound", json=body(user="racer", msg="same"), headers=ADMIN)
            for _ in range(20)
        )
    )
    assert all(r.status_code == 200 for r in results), [
        r.text for r in results if r.status_code != 200
    ]
    assert sum(not r.json()["duplicate"] for r in results) == 1
    assert len({r.json()["message_id"] for r in results}) == 1
    async with rt.db.session() as s:
        assert (
            await s.scalar(
                select(func.count()).select_from(Message).where(Message.direction == "in")
            )
            == 1
        )
        assert await s.scalar(select(func.count()).select_from(Conversation)) == 1
        assert await s.scalar(select(func.count()).select_from(Contact)) == 1


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({}, "contact"),
        ({"contact": {"external_id": "u"}}, "message"),
        (body(text=""), "text"),
        (
            {"contact": {"external_id": ""}, "message": {"external_id": "m", "text": "x"}},
            "external_id",
        ),
        ({**body(), "extra": 1}, "extra"),
        (
            {
                "contact": {"external_id": "u", "email": "not-an-email"},
                "message": {"external_id": "m", "text": "x"},
            },
            "email",
        ),
        (
            {
                "contact": {"external_id": "u"},
                "message": {"external_id": "m", "text": "x", "sent_at": "2026-01-01T10:00:00"},
            },
            "sent_at",
        ),
        ({"contact": [], "message": "x"}, "contact"),
    ],
)
async def test_bad_bodies_are_422_problem_json(
    client: httpx.AsyncClient, payload: dict[str, Any], where: str
) -> None:
    r = await client.post("/api/v1/inbound", json=payload, headers=ADMIN)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 422
    assert problem["title"]
    assert where in problem["detail"] or any(where in ".".join(e["loc"]) for e in problem["errors"])


async def test_not_json_at_all_is_4xx_problem(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/inbound",
        content=b"\xff\xfe not json",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert r.status_code in (400, 422)
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_inbound_needs_integration_role(client: httpx.AsyncClient, rt: Runtime) -> None:
    _, agent_token = await make_agent(rt, name="a", role="agent_l1")
    _, integ_token = await make_agent(rt, name="app", role="integration")
    assert (await client.post("/api/v1/inbound", json=body())).status_code == 401
    assert (
        await client.post("/api/v1/inbound", json=body(), headers=auth("nope"))
    ).status_code == 401
    assert (
        await client.post("/api/v1/inbound", json=body(), headers=auth(agent_token))
    ).status_code == 403
    assert (
        await client.post("/api/v1/inbound", json=body(), headers=auth(integ_token))
    ).status_code == 200
    # ...and an integration token reads no conversations.
    assert (await client.get("/api/v1/conversations", headers=auth(integ_token))).status_code == 403


async def test_verified_phone_merges_two_app_users_into_one_contact(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    a = (
        await client.post(
            "/api/v1/inbound",
            json=body("ua", "m1", phone="+34 612 345 678", verified=True),
            headers=ADMIN,
        )
    ).json()
    b = (
        await client.post(
            "/api/v1/inbound",
            json=body("ub", "m2", phone="612345678", verified=True),
            headers=ADMIN,
        )
    ).json()
    assert a["conversation_id"] == b["conversation_id"], "same person, same open conversation"
    conv = (await client.get(f"/api/v1/conversations/{a['conversation_id']}", headers=ADMIN)).json()
    contact = (await client.get(f"/api/v1/contacts/{conv['contact_id']}", headers=ADMIN)).json()
    kinds = sorted((i["kind"], i["value"]) for i in contact["identities"])
    assert kinds == [("app", "ua"), ("app", "ub"), ("phone", "+34612345678")]


async def test_unverified_phone_does_not_merge(client: httpx.AsyncClient, rt: Runtime) -> None:
    await client.post(
        "/api/v1/inbound", json=body("ua", "m1", phone="+34612345678", verified=True), headers=ADMIN
    )
    await client.post(
        "/api/v1/inbound",
        json=body("ub", "m2", phone="+34612345678", verified=False),
        headers=ADMIN,
    )
    assert await count(rt, Contact) == 2


async def test_app_phone_and_email_are_unverified_by_default(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    patient = body("patient", "m1", phone="+34612345678", verified=True)
    first = (await client.post("/api/v1/inbound", json=patient, headers=ADMIN)).json()
    # Another app user types the patient's number (and address): no "verified" said, none.
    other = body("other", "m2", phone="+34612345678", email="p@example.org")
    second = (await client.post("/api/v1/inbound", json=other, headers=ADMIN)).json()
    assert second["conversation_id"] != first["conversation_id"]
    assert await count(rt, Contact) == 2


async def test_pulled_replies_are_only_those_addressed_to_the_app_user(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    await client.post(
        "/api/v1/inbound", json=body("ua", "m1", phone="+34612345678", verified=True), headers=ADMIN
    )
    res = await client.post(
        "/api/v1/inbound", json=body("ub", "m2", phone="+34612345678", verified=True), headers=ADMIN
    )
    conv_id = res.json()["conversation_id"]
    _, agent = await make_agent(rt, name="Ana", role="agent_l1")
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"text": "a reply"}, headers=auth(agent)
    )
    assert r.status_code == 201, r.text
    async with rt.db.session() as s:
        outs = list(await s.scalars(select(Message).where(Message.direction == "out")))
    to = {str(m.channel_meta["recipient"]) for m in outs}
    for user in ("ua", "ub"):
        pulled = await client.get(
            "/api/v1/inbound/messages", params={"contact_external_id": user}, headers=ADMIN
        )
        assert pulled.status_code == 200
        ids = {m["id"] for m in pulled.json()["items"]}
        assert ids == {m.id for m in outs if m.channel_meta["recipient"] == user}
    assert to, "the replies went somewhere"


async def test_reopen_within_window_else_new_conversation(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    first = (await client.post("/api/v1/inbound", json=body(msg="m1"), headers=ADMIN)).json()
    cid = first["conversation_id"]
    r = await client.post(
        f"/api/v1/conversations/{cid}/status", json={"status": "resolved"}, headers=ADMIN
    )
    assert r.status_code == 200
    assert r.json()["status"] == "resolved"

    clock.advance(days=6)
    again = (await client.post("/api/v1/inbound", json=body(msg="m2"), headers=ADMIN)).json()
    assert again["conversation_id"] == cid
    conv = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    assert conv["status"] == "open"

    await client.post(
        f"/api/v1/conversations/{cid}/status", json={"status": "resolved"}, headers=ADMIN
    )
    clock.advance(days=8)
    later = (await client.post("/api/v1/inbound", json=body(msg="m3"), headers=ADMIN)).json()
    assert later["conversation_id"] != cid
