"""Agent API: roles and reach, replies through the outbox, claim races, transfer, escalate."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select

from models import Message, OutboxItem
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent

CLINICAL = "Me duele mucho el pecho desde ayer y no sé si tomar la medicación"
BOOKING = "Quiero cambiar mi cita del jueves"


async def new_conv(
    client: httpx.AsyncClient, text: str, user: str = "u1", msg: str = "m1"
) -> dict[str, Any]:
    r = await client.post(
        "/api/v1/inbound",
        json={"contact": {"external_id": user}, "message": {"external_id": msg, "text": text}},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    conv = await client.get(f"/api/v1/conversations/{r.json()['conversation_id']}", headers=ADMIN)
    return dict(conv.json())


async def test_first_line_agent_cannot_read_second_line(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="offline")
    _, l2 = await make_agent(rt, name="l2", role="agent_l2", presence="offline")
    clinical = await new_conv(client, CLINICAL, "c1", "m1")
    booking = await new_conv(client, BOOKING, "c2", "m2")
    assert clinical["queue"] == "second_line"
    assert booking["queue"] == "first_line"

    for path in ("", "/messages"):
        r = await client.get(f"/api/v1/conversations/{clinical['id']}{path}", headers=auth(l1))
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        assert (
            await client.get(f"/api/v1/conversations/{clinical['id']}{path}", headers=auth(l2))
        ).status_code == 200
    r = await client.post(
        f"/api/v1/conversations/{clinical['id']}/messages", json={"text": "hi"}, headers=auth(l1)
    )
    assert r.status_code == 404
    listed = (await client.get("/api/v1/conversations", headers=auth(l1))).json()
    assert [c["id"] for c in listed["items"]] == [booking["id"]]
    listed2 = (await client.get("/api/v1/conversations", headers=auth(l2))).json()
    assert {c["id"] for c in listed2["items"]} == {booking["id"], clinical["id"]}
    queues = (await client.get("/api/v1/queues", headers=auth(l1))).json()["items"]
    assert [q["name"] for q in queues] == ["first_line"]


async def test_role_boundaries(client: httpx.AsyncClient, rt: Runtime) -> None:
    # offline, so the conversation waits unassigned until someone claims it
    a1, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="offline")
    a2, l1b = await make_agent(rt, name="l1b", role="agent_l1", presence="offline")
    _, sup = await make_agent(rt, name="sup", role="supervisor")
    conv = await new_conv(client, BOOKING)
    # agents cannot create agents; supervisors can, but not admins
    new = {"name": "x", "role": "agent_l1"}
    assert (await client.post("/api/v1/agents", json=new, headers=auth(l1))).status_code == 403
    created = await client.post("/api/v1/agents", json=new, headers=auth(sup))
    assert created.status_code == 201
    assert created.json()["token"].startswith("cl_")
    assert (
        await client.post("/api/v1/agents", json={**new, "role": "admin"}, headers=auth(sup))
    ).status_code == 403
    # presence: your own only, unless supervisor
    assert (
        await client.put(
            f"/api/v1/agents/{a2}/presence", json={"presence": "away"}, headers=auth(l1)
        )
    ).status_code == 403
    assert (
        await client.put(
            f"/api/v1/agents/{a1}/presence", json={"presence": "away"}, headers=auth(l1)
        )
    ).status_code == 200
    assert (
        await client.put(
            f"/api/v1/agents/{a2}/presence", json={"presence": "away"}, headers=auth(sup)
        )
    ).status_code == 200
    # an agent cannot reassign a conversation held by someone else; a supervisor can
    held = (
        await client.post(f"/api/v1/conversations/{conv['id']}/claim", headers=auth(l1b))
    ).json()
    assert held["assignee_id"] == a2
    r = await client.post(
        f"/api/v1/conversations/{conv['id']}/assign", json={"agent_id": a1}, headers=auth(l1)
    )
    assert r.status_code == 403
    r = await client.post(
        f"/api/v1/conversations/{conv['id']}/assign", json={"agent_id": a1}, headers=auth(sup)
    )
    assert r.status_code == 200
    assert r.json()["assignee_id"] == a1
    # a revoked token stops working at once
    assert (await client.delete(f"/api/v1/agents/{a1}", headers=auth(sup))).status_code == 204
    assert (await client.get("/api/v1/conversations", headers=auth(l1))).status_code == 401


async def test_reply_goes_through_outbox_and_note_does_not(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    aid, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="offline")
    conv = await new_conv(client, BOOKING)
    async with rt.db.session() as s:
        before = len(list(await s.scalars(select(OutboxItem))))
    note = await client.post(
        f"/api/v1/conversations/{conv['id']}/messages",
        json={"text": "VIP, be gentle", "internal": True},
        headers=auth(l1),
    )
    assert note.status_code == 201
    assert note.json()["direction"] == "note"
    reply = await client.post(
        f"/api/v1/conversations/{conv['id']}/messages",
        json={"text": "Claro, ¿qué día le va bien?"},
        headers=auth(l1),
    )
    assert reply.status_code == 201
    m = reply.json()
    assert (m["direction"], m["channel"], m["delivery_status"]) == ("out", "app", "queued")
    async with rt.db.session() as s:
        items = list(await s.scalars(select(OutboxItem)))
    assert len(items) == before + 1
    assert items[-1].message_id == m["id"]
    after = (await client.get(f"/api/v1/conversations/{conv['id']}", headers=auth(l1))).json()
    assert after["assignee_id"] == aid, "replying to an unassigned conversation takes it"
    assert "first_response" not in {t["kind"] for t in after["sla"]}, "first response met"


async def test_two_agents_claim_at_once_one_wins(client: httpx.AsyncClient, rt: Runtime) -> None:
    _, t1 = await make_agent(rt, name="a", role="agent_l1", presence="offline")
    _, t2 = await make_agent(rt, name="b", role="agent_l1", presence="offline")
    conv = await new_conv(client, BOOKING)
    r1, r2 = await asyncio.gather(
        client.post(f"/api/v1/conversations/{conv['id']}/claim", headers=auth(t1)),
        client.post(f"/api/v1/conversations/{conv['id']}/claim", headers=auth(t2)),
    )
    assert sorted([r1.status_code, r2.status_code]) == [200, 409]


async def test_escalate_moves_to_second_line_and_out_of_l1_reach(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, l1 = await make_agent(rt, name="l1", role="agent_l1")
    conv = await new_conv(client, BOOKING)
    assert (
        await client.post(f"/api/v1/conversations/{conv['id']}/claim", headers=auth(l1))
    ).status_code == 200
    bad = await client.post(
        f"/api/v1/conversations/{conv['id']}/escalate", json={}, headers=auth(l1)
    )
    assert bad.status_code == 422
    r = await client.post(
        f"/api/v1/conversations/{conv['id']}/escalate",
        json={"reason": "asks about side effects", "priority": "high"},
        headers=auth(l1),
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["queue"], out["priority"], out["assignee_id"]) == ("second_line", "high", None)
    assert any("side effects" in reason for reason in out["routing_reasons"])
    assert (
        await client.get(f"/api/v1/conversations/{conv['id']}", headers=auth(l1))
    ).status_code == 404


async def test_transfer_and_status_rules(client: httpx.AsyncClient, rt: Runtime) -> None:
    _, sup = await make_agent(rt, name="sup", role="supervisor")
    conv = await new_conv(client, CLINICAL)
    r = await client.post(
        f"/api/v1/conversations/{conv['id']}/transfer",
        json={"queue": "first_line", "reason": "billing"},
        headers=auth(sup),
    )
    assert r.status_code == 200
    assert r.json()["queue"] == "first_line"
    bad = await client.post(
        f"/api/v1/conversations/{conv['id']}/transfer", json={"queue": "nowhere"}, headers=auth(sup)
    )
    assert bad.status_code == 422
    for status in ("pending", "resolved", "closed"):
        r = await client.post(
            f"/api/v1/conversations/{conv['id']}/status", json={"status": status}, headers=auth(sup)
        )
        assert r.status_code == 200
        assert r.json()["status"] == status
    r = await client.post(
        f"/api/v1/conversations/{conv['id']}/status", json={"status": "open"}, headers=auth(sup)
    )
    assert r.status_code == 409
    r = await client.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "x"}, headers=auth(sup)
    )
    assert r.status_code == 409


async def test_pending_pauses_and_customer_reply_resumes(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    conv = await new_conv(client, BOOKING, msg="a")
    await client.post(
        f"/api/v1/conversations/{conv['id']}/status", json={"status": "pending"}, headers=ADMIN
    )
    paused = (await client.get(f"/api/v1/conversations/{conv['id']}", headers=ADMIN)).json()
    assert {t["state"] for t in paused["sla"]} == {"paused"}
    await new_conv(client, "ok, el viernes", msg="b")
    resumed = (await client.get(f"/api/v1/conversations/{conv['id']}", headers=ADMIN)).json()
    assert resumed["status"] == "open"
    assert "paused" not in {t["state"] for t in resumed["sla"]}


async def test_cursor_paging_visits_every_conversation_once(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    ids = {(await new_conv(client, BOOKING, user=f"u{i}", msg=f"m{i}"))["id"] for i in range(7)}
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/conversations", params=params, headers=ADMIN)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))
    assert (
        await client.get("/api/v1/conversations", params={"cursor": "!!"}, headers=ADMIN)
    ).status_code == 422


async def test_contact_merge_by_agent(client: httpx.AsyncClient, rt: Runtime) -> None:
    a = await new_conv(client, BOOKING, user="x1", msg="m1")
    await client.post(
        f"/api/v1/conversations/{a['id']}/status", json={"status": "resolved"}, headers=ADMIN
    )
    b = await new_conv(client, BOOKING, user="x2", msg="m2")
    r = await client.post(
        f"/api/v1/contacts/{a['contact_id']}/merge",
        json={"other_contact_id": b["contact_id"]},
        headers=ADMIN,
    )
    assert r.status_code == 200
    assert sorted(i["value"] for i in r.json()["identities"]) == ["x1", "x2"]
    moved = (await client.get(f"/api/v1/conversations/{b['id']}", headers=ADMIN)).json()
    assert moved["contact_id"] == a["contact_id"]
    again = await client.post(
        f"/api/v1/contacts/{a['contact_id']}/merge",
        json={"other_contact_id": b["contact_id"]},
        headers=ADMIN,
    )
    assert again.status_code == 422


async def test_tag_filter_pages_in_sql(client: httpx.AsyncClient, rt: Runtime) -> None:
    billing = "I was charged twice for my visit"
    ids = [(await new_conv(client, billing, user=f"b{i}", msg=f"b{i}"))["id"] for i in range(3)]
    await new_conv(client, BOOKING, user="other", msg="o1")
    page1 = (
        await client.get(
            "/api/v1/conversations", params={"tag": "billing", "limit": 2}, headers=ADMIN
        )
    ).json()
    assert [c["id"] for c in page1["items"]] == sorted(ids, reverse=True)[:2]
    page2 = (
        await client.get(
            "/api/v1/conversations",
            params={"tag": "billing", "limit": 2, "cursor": page1["next_cursor"]},
            headers=ADMIN,
        )
    ).json()
    assert [c["id"] for c in page2["items"]] == [min(ids)]
    assert page2["next_cursor"] is None


async def test_agent_tier_follows_the_role(client: httpx.AsyncClient, rt: Runtime) -> None:
    # Reading follows the role and assignment the tier: an agent_l1 of tier 2 was handed
    # second-line crisis work it could not open. A disagreeing tier is refused.
    for role, tier in (("agent_l1", 2), ("agent_l2", 1), ("supervisor", 1), ("integration", 1)):
        r = await client.post(
            "/api/v1/agents", json={"name": "x", "role": role, "tier": tier}, headers=ADMIN
        )
        assert r.status_code == 422, (role, tier, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    for role, tier in (("agent_l1", 1), ("agent_l2", None), ("supervisor", 2)):
        r = await client.post(
            "/api/v1/agents", json={"name": "x", "role": role, "tier": tier}, headers=ADMIN
        )
        assert r.status_code == 201, r.text
        assert r.json()["tier"] == {"agent_l1": 1}.get(role, 2)


async def test_replies_stay_with_the_identity_the_conversation_has_been_using(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    async def inbound(user: str, msg: str, text: str) -> int:
        r = await client.post(
            "/api/v1/inbound",
            json={
                "contact": {"external_id": user, "phone": "+34612345678", "verified": True},
                "message": {"external_id": msg, "text": text},
            },
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
        return int(r.json()["conversation_id"])

    async def recipients(conv_id: int) -> list[str]:
        async with rt.db.session() as s:
            rows = await s.scalars(
                select(Message)
                .where(Message.conversation_id == conv_id, Message.direction == "out")
                .order_by(Message.id)
            )
            return [str(m.channel_meta["recipient"]) for m in rows]

    conv_id = await inbound("patient", "m1", BOOKING)
    # A newly linked identity of the same contact writes into the conversation...
    assert await inbound("newcomer", "m2", "¿y la cita?") == conv_id
    _, agent = await make_agent(rt, name="Ana", role="agent_l1")
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"text": "r1"}, headers=auth(agent)
    )
    assert r.status_code == 201, r.text
    # ...and the reply still goes where the conversation has been replying.
    assert await recipients(conv_id) == ["patient", "patient"]

    # Moving the replies takes an agent's action, and later replies follow it.
    conv = (await client.get(f"/api/v1/conversations/{conv_id}", headers=ADMIN)).json()
    contact = (await client.get(f"/api/v1/contacts/{conv['contact_id']}", headers=ADMIN)).json()
    (new,) = [i["id"] for i in contact["identities"] if i["value"] == "newcomer"]
    for body in ({"text": "r2", "identity_id": new}, {"text": "r3"}):
        r = await client.post(
            f"/api/v1/conversations/{conv_id}/messages", json=body, headers=auth(agent)
        )
        assert r.status_code == 201, r.text
    assert await recipients(conv_id) == ["patient", "patient", "newcomer", "newcomer"]
    # An identity of another contact is refused.
    other = await new_conv(client, BOOKING, user="someone-else", msg="m9")
    theirs = (await client.get(f"/api/v1/contacts/{other['contact_id']}", headers=ADMIN)).json()[
        "identities"
    ][0]["id"]
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={"text": "x", "identity_id": theirs},
        headers=auth(agent),
    )
    assert r.status_code == 422
