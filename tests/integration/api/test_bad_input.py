"""Plausible bad input is stored cleaned or refused with a 4xx, never a 500 (providers retry
a 500 forever). PostgreSQL refuses NUL in text where SQLite does not: run on both."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from models import Contact, Message
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent


def app_body(**message: Any) -> dict[str, Any]:
    return {
        "contact": {"external_id": "u\x001", "name": "Lu\x00cía"},
        "message": {"external_id": "m\x001", "text": "Hola\x00, una cita", **message},
    }


async def test_nul_bytes_are_dropped_not_a_500(client: httpx.AsyncClient, rt: Runtime) -> None:
    r = await client.post("/api/v1/inbound", json=app_body(), headers=ADMIN)
    assert r.status_code == 200, r.text
    conv_id = r.json()["conversation_id"]
    async with rt.db.session() as s:
        msg = await s.scalar(select(Message).where(Message.direction == "in"))
        assert msg is not None
        assert (msg.text, msg.external_id) == ("Hola, una cita", "m1")
        contact = await s.scalar(select(Contact))
        assert contact is not None
        assert contact.name == "Lucía"
    _, agent = await make_agent(rt, name="Ana", role="agent_l1")
    for internal in (False, True):
        r = await client.post(
            f"/api/v1/conversations/{conv_id}/messages",
            json={"text": "ok\x00", "internal": internal},
            headers=auth(agent),
        )
        assert r.status_code == 201, r.text
        assert r.json()["text"] == "ok"
    for query in ("tag=a%00b", "channel=app&contact_id=1%00"):
        r = await client.get(f"/api/v1/conversations?{query}", headers=auth(agent))
        assert r.status_code == 400, r.text
    r = await client.get(
        "/api/v1/inbound/messages", params={"contact_external_id": "u\x001"}, headers=ADMIN
    )
    assert r.status_code == 400


async def test_values_longer_than_their_columns_are_cut(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    body = app_body()
    body["contact"]["name"] = "N" * 200  # the API's own limit
    r = await client.post("/api/v1/inbound", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text


async def test_impossible_dates_are_refused_with_a_4xx(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/inbound", json=app_body(sent_at="0001-01-01T00:00:00+00:00"), headers=ADMIN
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_deeply_nested_json_is_a_4xx(client: httpx.AsyncClient) -> None:
    deep = "[" * 3000 + "]" * 3000  # small, but deeper than json.loads recurses
    r = await client.post(
        "/api/v1/inbound",
        content=deep,
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500, r.text
    r = await client.post(
        "/webchat/sessions",
        content='{"name": ' + deep + "}",
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500, r.text


def test_depth_helpers() -> None:
    from models.messages import json_depth, raw_json_too_deep

    assert json_depth({"a": [1, {"b": []}]}) == 4
    assert json_depth(1) == 0
    assert raw_json_too_deep("[" * 40)
    assert not raw_json_too_deep('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')
