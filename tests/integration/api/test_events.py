"""The live event stream over real HTTP (uvicorn on loopback): order, resume, visibility."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from models import Conversation
from router.api import create_app
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent
from tests.support.server import serve
from tests.support.waits import wait_for


async def read_events(
    base: str,
    headers: dict[str, str],
    n: int,
    params: dict[str, Any] | None = None,
    connected: asyncio.Event | None = None,
) -> list[dict[str, Any]]:
    """The first `n` events shown; `connected` is set once the response has started, which
    is after the stream chose its starting point (the handler does before responding)."""
    out: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as c,
        c.stream("GET", "/api/v1/events", headers=headers, params=params) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        if connected is not None:
            connected.set()
        current: dict[str, Any] = {}
        async for line in r.aiter_lines():
            if line.startswith("id:"):
                current["id"] = int(line[3:].strip())
            elif line.startswith("event:"):
                current["event"] = line[6:].strip()
            elif line.startswith("data:"):
                current["data"] = json.loads(line[5:].strip())
            elif not line and current.get("event"):
                out.append(current)
                current = {}
                if len(out) >= n:
                    break
    return out


async def post_inbound(base: str, user: str, msg: str, text: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        r = await c.post(
            "/api/v1/inbound",
            json={"contact": {"external_id": user}, "message": {"external_id": msg, "text": text}},
            headers=ADMIN,
        )
        assert r.status_code == 200
        return dict(r.json())


async def test_stream_delivers_new_events_and_resumes(rt: Runtime) -> None:
    async with serve(create_app(runtime=rt)) as base:
        connected = asyncio.Event()
        reader = asyncio.create_task(read_events(base, ADMIN, 3, connected=connected))
        # The stream starts "now": connected before the message.
        await wait_for(connected.is_set, what="the event stream to be connected")
        created = await post_inbound(base, "u1", "m1", "Quiero una cita")
        events = await asyncio.wait_for(reader, 10)
        assert [e["event"] for e in events][:1] == ["contact.created"]
        assert all(e["id"] > 0 for e in events)
        assert any(e["data"]["conversation_id"] == created["conversation_id"] for e in events)
        assert all("Quiero una cita" not in json.dumps(e) for e in events), "no bodies in events"
        # Reconnecting with Last-Event-ID replays what came after, in order.
        replay = await read_events(base, {**ADMIN, "Last-Event-ID": str(events[0]["id"])}, 2)
        assert [e["id"] for e in replay] == [e["id"] for e in events[1:3]]


async def test_first_line_agent_does_not_see_second_line_events(rt: Runtime) -> None:
    _, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="offline")
    async with serve(create_app(runtime=rt)) as base:
        await post_inbound(
            base, "c1", "m1", "Tengo fiebre alta y dolor de pecho, ¿tomo el antibiótico?"
        )
        await post_inbound(base, "c2", "m2", "Quiero cambiar mi cita")
        everything = await read_events(base, ADMIN, 8, params={"after": 0})
        seen_by_l1 = await read_events(
            base, auth(l1), 1, params={"after": 0, "types": "message.received"}
        )
    clinical_conv = next(
        e["data"]["conversation_id"]
        for e in everything
        if e["event"] == "conversation.routed" and e["data"]["queue"] == "second_line"
    )
    assert seen_by_l1, "first-line events are visible"
    assert all(e["data"]["conversation_id"] != clinical_conv for e in seen_by_l1)
    assert all(e["event"] == "message.received" for e in seen_by_l1)


async def read_until(
    base: str, headers: dict[str, str], stop: Any, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every event the caller is shown, up to and including the first one `stop` accepts."""
    out: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as c,
        c.stream("GET", "/api/v1/events", headers=headers, params=params) as r,
    ):
        assert r.status_code == 200
        current: dict[str, Any] = {}
        async for line in r.aiter_lines():
            if line.startswith("event:"):
                current["event"] = line[6:].strip()
            elif line.startswith("data:"):
                current["data"] = json.loads(line[5:].strip())
            elif not line and current.get("event"):
                out.append(current)
                current = {}
                if stop(out[-1]):
                    break
    return out


async def test_first_line_stream_never_shows_a_second_line_conversation_exists(
    rt: Runtime,
) -> None:
    """Neither the conversation's creation nor its new contact reach a first-line agent: both
    carry the tier the conversation was routed to in the same unit of work."""
    _, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="offline")
    async with serve(create_app(runtime=rt)) as base:
        hidden = await post_inbound(
            base, "c1", "m1", "Tengo fiebre alta y dolor de pecho, ¿tomo el antibiótico?"
        )
        visible = await post_inbound(base, "c2", "m2", "Quiero cambiar mi cita")
        seen_by_l1 = await asyncio.wait_for(
            read_until(
                base,
                auth(l1),
                lambda e: (
                    e["event"] == "message.received"
                    and e["data"]["conversation_id"] == visible["conversation_id"]
                ),
                params={"after": 0},
            ),
            10,
        )
        everything = await read_events(base, ADMIN, 1, params={"after": 0})
    async with rt.db.session() as session:
        conv = await session.get(Conversation, hidden["conversation_id"])
        assert conv is not None
        hidden_contact = conv.contact_id
    assert everything, "the admin sees the stream"
    assert {e["event"] for e in seen_by_l1} >= {"contact.created", "conversation.created"}
    leaks = [
        e
        for e in seen_by_l1
        if e["data"]["conversation_id"] == hidden["conversation_id"]
        or e["data"]["contact_id"] == hidden_contact
    ]
    assert leaks == []


async def test_a_revoked_token_ends_its_open_stream(rt: Runtime) -> None:
    """The stream re-checks its caller before each read: deactivating the agent (which
    rotates the token) ends the stream, and nothing recorded afterwards reaches it."""
    agent_id, l1 = await make_agent(rt, name="l1", role="agent_l1", presence="offline")
    async with serve(create_app(runtime=rt)) as base:
        seen: list[str] = []
        connected = asyncio.Event()

        async def listen() -> None:
            async with (
                httpx.AsyncClient(base_url=base, timeout=30) as c,
                c.stream("GET", "/api/v1/events", headers=auth(l1)) as r,
            ):
                assert r.status_code == 200
                connected.set()
                async for line in r.aiter_lines():
                    if line.startswith("event:"):
                        seen.append(line[6:].strip())

        reader = asyncio.create_task(listen())
        await wait_for(connected.is_set, what="the agent's event stream to be connected")
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            r = await c.delete(f"/api/v1/agents/{agent_id}", headers=ADMIN)
            assert r.status_code in (200, 204)
        seen.clear()  # what the deactivation itself recorded may still arrive
        # Recorded after the revocation (committed with the DELETE's response), while the
        # stream may still be open: its next read must notice and end instead.
        await post_inbound(base, "c1", "m1", "Quiero cambiar mi cita")
        # The server ended the stream (the positive signal: nothing can arrive afterwards).
        await wait_for(reader.done, what="the server to end the revoked token's stream")
        await reader  # and it ended cleanly (a 200 and a closed body)
    assert "message.received" not in seen
