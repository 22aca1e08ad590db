"""Tokens, origins, limits and isolation between visitors: each with its close code."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from channels.webchat import WebchatChannel
from models import Contact, ContactIdentity
from router.flows import contacts
from router.runtime import Runtime
from tests.integration.channels.webchat.conftest import CLINIC, is_type
from tests.support.fakes import FakeClock


async def test_session_create_resume_and_bad_tokens(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    r = await http.post("/webchat/sessions", json={})
    assert r.status_code == 201
    first = r.json()
    assert first["conversation_id"] is None
    assert first["visitor_id"].startswith("v")

    resumed = (await http.post("/webchat/sessions", json={"token": first["token"]})).json()
    assert resumed["visitor_id"] == first["visitor_id"]

    other = (await http.post("/webchat/sessions", json={})).json()
    assert other["visitor_id"] != first["visitor_id"]

    # A token whose claims were edited (another visitor id) fails its signature.
    payload, mac = first["token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["v"] = other["visitor_id"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    bad = await http.post("/webchat/sessions", json={"token": f"{forged}.{mac}"})
    assert bad.status_code == 401
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert first["token"] not in bad.text

    invalid = await http.post("/webchat/sessions", json={"email": "not an address"})
    assert invalid.status_code == 422
    assert "email" in invalid.json()["detail"]
    assert "not an address" not in invalid.text

    clock.advance(days=31)
    expired = await http.post("/webchat/sessions", json={"token": resumed["token"]})
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]


async def test_socket_rejects_bad_and_expired_tokens(
    new_visitor: Any, base_url: str, clock: FakeClock
) -> None:
    v = await new_visitor()
    v.token = v.token[:-2] + ("AA" if not v.token.endswith("AA") else "BB")
    assert (await (await v.socket()).closed())[0] == 4401

    w = await new_visitor()
    clock.advance(days=31)
    code, reason = await (await w.socket()).closed()
    assert (code, reason) == (4401, "token expired")


async def test_origin_allow_list(http: httpx.AsyncClient, new_visitor: Any, base_url: str) -> None:
    v = await new_visitor()
    assert (await (await v.socket(origin="https://evil.example")).closed())[0] == 4403
    ok = await v.socket(origin=CLINIC)
    assert (await ok.recv())["type"] == "status"
    same = await v.socket(origin=base_url)  # the demo page, served by Careline itself
    assert (await same.recv())["type"] == "status"

    denied = await http.post(
        "/webchat/sessions", json={}, headers={"Origin": "https://evil.example"}
    )
    assert denied.status_code == 403
    assert "access-control-allow-origin" not in denied.headers

    pre = await http.options(
        "/webchat/sessions",
        headers={"Origin": CLINIC, "Access-Control-Request-Method": "POST"},
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == CLINIC
    created = await http.post("/webchat/sessions", json={}, headers={"Origin": CLINIC})
    assert created.headers["access-control-allow-origin"] == CLINIC
    # The widget must be able to read a 401 across origins to know its token is dead.
    dead = await http.post("/webchat/sessions", json={"token": "x.y"}, headers={"Origin": CLINIC})
    assert dead.status_code == 401
    assert dead.headers["access-control-allow-origin"] == CLINIC


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", 4400),
        (json.dumps(["a list"]), 4400),
        (json.dumps({"type": "message", "client_id": "bad id!", "text": "x"}), 4400),
        (json.dumps({"type": "message", "client_id": "ok", "text": "   "}), 4400),
        (json.dumps({"type": "message", "client_id": "ok", "text": "x" * 501}), 1009),
        (json.dumps({"type": "message", "client_id": "ok", "text": "x" * 3000}), 1009),
    ],
)
async def test_malformed_and_oversized_frames_close(
    new_visitor: Any, rt: Runtime, frame: str, code: int
) -> None:
    v = await new_visitor()
    sock = await v.socket()
    await sock.recv()
    await sock.send(frame)
    got, reason = await sock.closed()
    assert got == code
    assert reason


async def test_unknown_frame_types_are_ignored(new_visitor: Any) -> None:
    v = await new_visitor()
    sock = await v.socket()
    await sock.recv()
    await sock.send({"type": "future-feature"})
    await sock.send({"type": "typing"})
    await sock.send({"type": "message", "client_id": "k", "text": "still here"})
    assert (await sock.until(is_type("ack")))["client_id"] == "k"


async def test_message_rate_limit_and_socket_limit(
    new_visitor: Any, webchat: WebchatChannel
) -> None:
    v = await new_visitor()
    sock = await v.socket()
    for i in range(webchat.config.messages_per_minute):
        await sock.send({"type": "message", "client_id": f"r{i}", "text": f"msg {i}"})
        await sock.until(is_type("ack"))
    await sock.send({"type": "message", "client_id": "over", "text": "one too many"})
    code, reason = await sock.closed()
    assert code == 4429
    assert "per minute" in reason
    # Reconnecting does not reset the window.
    again = await v.socket()
    await again.send({"type": "message", "client_id": "over2", "text": "still too many"})
    assert (await again.closed())[0] == 4429

    w = await new_visitor()
    s1, s2 = await w.socket(), await w.socket()
    await s1.recv()
    await s2.recv()
    assert (await (await w.socket()).closed())[0] == 4409
    await s1.close()
    # A slot frees up once a socket closes.
    for _ in range(50):
        if len(webchat.hub.connections(w.visitor_id)) < 2:
            break
        await asyncio.sleep(0.02)
    s3 = await w.socket()
    assert (await s3.recv())["type"] == "status"


async def test_a_token_never_reads_another_visitors_messages(rt: Runtime, new_visitor: Any) -> None:
    alice, bob = await new_visitor(name="Alice"), await new_visitor(name="Bob")
    a = await alice.socket()
    await a.send({"type": "message", "client_id": "same", "text": "alice secret"})
    a_ack = await a.until(is_type("ack"))
    b = await bob.socket()
    # Bob reusing Alice's client_id creates his own message, not a duplicate of hers.
    await b.send({"type": "message", "client_id": "same", "text": "bob here"})
    b_ack = await b.until(is_type("ack"))
    assert b_ack["duplicate"] is False
    assert b_ack["id"] != a_ack["id"]
    assert b_ack["conversation_id"] != a_ack["conversation_id"]

    # Even after an agent merges the two contacts, each visitor sees only their own.
    async with rt.db.session() as s:
        webchat_ids = select(ContactIdentity).where(ContactIdentity.kind == "webchat")
        ids = {i.value: i.contact_id for i in await s.scalars(webchat_ids)}
        keep = await s.get(Contact, ids[alice.visitor_id])
        other = await s.get(Contact, ids[bob.visitor_id])
        assert keep is not None
        assert other is not None
        await contacts.merge_contacts(s, keep=keep, other=other, now=rt.now(), reason="test")

    fresh_b = await bob.socket()
    texts = [f["text"] for f in await fresh_b.quiet(0.8) if f["type"] == "message"]
    assert "bob here" in texts
    assert "alice secret" not in texts
    assert all("Alice" not in t for t in texts)
    fresh_a = await alice.socket()
    texts_a = [f["text"] for f in await fresh_a.quiet(0.8) if f["type"] == "message"]
    assert "alice secret" in texts_a
    assert "bob here" not in texts_a


async def test_widget_and_demo_are_served(http: httpx.AsyncClient) -> None:
    js = await http.get("/webchat/widget.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    # Message text must be set as text: the widget never writes HTML from strings.
    assert "innerHTML" not in js.text
    assert "insertAdjacentHTML" not in js.text
    assert "eval(" not in js.text
    demo = await http.get("/webchat/demo")
    assert demo.status_code == 200
    assert '<script src="/webchat/widget.js"' in demo.text
    assert "script-src 'self'" in demo.headers["content-security-policy"]


async def test_not_configured_channel_is_404(client: httpx.AsyncClient, rt: Runtime) -> None:
    from channels.webchat.routes import api_router

    client._transport.app.include_router(api_router)  # type: ignore[attr-defined]
    r = await client.post("/webchat/sessions", json={})
    assert r.status_code == 404


async def test_tokens_never_reach_the_logs(
    new_visitor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # production level; DEBUG libraries echo frames
    v = await new_visitor()
    sock = await v.socket()
    await sock.send({"type": "message", "client_id": "log1", "text": "private words"})
    await sock.until(is_type("ack"))
    await sock.close()
    # The server's records only (the test's own client libraries log what they send).
    server = [
        r.getMessage()
        for r in caplog.records
        if not r.name.startswith(("websockets.client", "httpx", "httpcore"))
    ]
    assert any("/webchat/ws?token=[redacted]" in m for m in server), server
    assert not [m for m in server if v.token in m or "private words" in m]
