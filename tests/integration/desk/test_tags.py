"""Tags by hand; a manual crisis tag does what detection does and records who and why."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from models import Conversation, CrisisWatch, Event, Message
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent
from tests.integration.desk.helpers import inbound

BOOKING = "Quiero cambiar la cita del jueves"


async def _tags(
    client: httpx.AsyncClient, conv_id: int, headers: dict[str, str], **body: object
) -> httpx.Response:
    return await client.post(f"/api/v1/conversations/{conv_id}/tags", json=body, headers=headers)


async def test_agents_add_and_remove_tags_and_the_event_says_who(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    l1_id, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="offline")
    conv = await inbound(client, BOOKING, user="u1", msg="m1")
    r = await _tags(client, conv["id"], auth(l1), add=["vip", "billing"], reason="big client")
    assert r.status_code == 200, r.text
    assert {"vip", "billing"} <= set(r.json()["tags"])
    r = await _tags(client, conv["id"], auth(l1), remove=["vip"])
    assert r.status_code == 200
    assert "vip" not in r.json()["tags"]
    assert "billing" in r.json()["tags"]
    listed = await client.get("/api/v1/conversations", params={"tag": "billing"}, headers=ADMIN)
    assert [c["id"] for c in listed.json()["items"]] == [conv["id"]]
    async with rt.db.session() as s:
        evs = list(
            await s.scalars(
                select(Event).where(Event.type == "conversation.tagged").order_by(Event.id)
            )
        )
    assert [(e.agent_id, e.data["added"], e.data["removed"]) for e in evs] == [
        (l1_id, ["vip", "billing"], []),
        (l1_id, [], ["vip"]),
    ]
    assert evs[0].data["reason"] == "big client"


async def test_manual_crisis_does_what_detection_does(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    l1_id, l1 = await make_agent(rt, name="l1", role="agent_l1", languages=["es"])
    conv = await inbound(client, BOOKING, user="u1", msg="m1")
    assert conv["queue"] == "first_line"
    assert conv["assignee_id"] == l1_id
    l2_id, _ = await make_agent(rt, name="l2", role="agent_l2", languages=["es"])

    r = await _tags(
        client, conv["id"], auth(l1), add=["crisis"], reason="said goodbye on the phone"
    )
    assert r.status_code == 200, r.text
    after = (await client.get(f"/api/v1/conversations/{conv['id']}", headers=ADMIN)).json()
    assert after["queue"] == "second_line"
    assert after["priority"] == "urgent"
    assert "crisis" in after["tags"]
    assert after["assignee_id"] == l2_id  # a clinician took it, the first line let go
    assert any("crisis tagged by agent" in r for r in after["routing_reasons"])
    # The first-line agent is told why it left them.
    moved = await client.get(f"/api/v1/conversations/{conv['id']}", headers=auth(l1))
    assert moved.status_code == 410

    async with rt.db.session() as s:
        detected = list(
            await s.scalars(
                select(Event).where(
                    Event.conversation_id == conv["id"], Event.type == "crisis.detected"
                )
            )
        )
        acks = list(
            await s.scalars(
                select(Message).where(
                    Message.conversation_id == conv["id"], Message.kind == "crisis_ack"
                )
            )
        )
        watch = await s.scalar(select(CrisisWatch).where(CrisisWatch.conversation_id == conv["id"]))
    assert len(detected) == 1
    assert detected[0].agent_id == l1_id
    assert detected[0].data["alert"] == "supervisor"
    assert detected[0].data["by_agent_id"] == l1_id
    assert detected[0].data["reason"] == "said goodbye on the phone"
    assert len(acks) == 1  # the safe acknowledgement, once
    assert watch is not None
    assert watch.state == "watching"

    # Tagging again (or detection later) alerts no second time.
    r = await _tags(client, conv["id"], ADMIN, remove=["crisis"])
    assert r.status_code == 200
    r = await _tags(client, conv["id"], ADMIN, add=["crisis"], reason="again")
    assert r.status_code == 200
    async with rt.db.session() as s:
        n = len(
            list(
                await s.scalars(
                    select(Event).where(
                        Event.conversation_id == conv["id"], Event.type == "crisis.detected"
                    )
                )
            )
        )
        acks_n = len(
            list(
                await s.scalars(
                    select(Message).where(
                        Message.conversation_id == conv["id"], Message.kind == "crisis_ack"
                    )
                )
            )
        )
    assert (n, acks_n) == (1, 1)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"add": ["crisis"]}, 422),  # a manual crisis needs a reason
        ({"add": ["crisis"], "reason": "  "}, 422),
        ({"add": ["Not A Tag"]}, 422),
        ({"add": ["x" * 41]}, 422),
        ({"add": ["a"], "remove": ["a"]}, 422),
        ({"add": [f"t{i}" for i in range(21)]}, 422),
        ({"add": ["ok"], "colour": "red"}, 422),
        ({"add": ["ok"]}, 200),
        ({}, 200),
    ],
)
async def test_bad_tag_requests_are_clear_4xx(
    client: httpx.AsyncClient, body: dict[str, object], status: int
) -> None:
    conv = await inbound(client, BOOKING, user="u1", msg="m1")
    r = await client.post(f"/api/v1/conversations/{conv['id']}/tags", json=body, headers=ADMIN)
    assert r.status_code == status, r.text


async def test_first_line_cannot_tag_second_line_nor_remove_crisis(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="offline")
    clinical = await inbound(client, "Me duele el pecho, ¿tomo la medicación?", user="u1", msg="m1")
    assert clinical["queue"] == "second_line"
    r = await _tags(client, clinical["id"], auth(l1), add=["vip"])
    assert r.status_code == 404
    booking = await inbound(client, BOOKING, user="u2", msg="m2")
    async with rt.db.session() as s:
        c = await s.get(Conversation, booking["id"])
        assert c is not None
        c.tags = [*c.tags, "urgent_medical"]
    r = await _tags(client, booking["id"], auth(l1), remove=["urgent_medical"])
    assert r.status_code == 403
