"""The web chat socket over a real WebSocket against uvicorn: persist-before-ack, duplicates,
live replies, replay after reconnect, status, and read receipts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from channels.webchat import WebchatChannel, feed
from models import ContactIdentity, Event, Message
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.conftest import auth, make_agent
from tests.integration.channels.webchat.conftest import is_type
from tests.support.factories import count_messages


def message_from(direction: str) -> Any:
    return lambda f: f.get("type") == "message" and f.get("direction") == direction


async def test_message_is_stored_before_ack_and_retries_do_not_duplicate(
    rt: Runtime, new_visitor: Any
) -> None:
    v = await new_visitor(name="Lucía", email="Lucia@Example.org", locale="es")
    sock = await v.socket()
    assert (await sock.recv()) == {"type": "status", "state": "none", "conversation_id": None}

    await sock.send({"type": "message", "client_id": "c1", "text": "Hola, necesito una cita"})
    ack = await sock.until(is_type("ack"))
    assert ack["client_id"] == "c1"
    assert ack["duplicate"] is False
    # The ack promises durability: the row is there the moment the ack arrives.
    async with rt.db.session() as s:
        stored = await s.get(Message, ack["id"])
        assert stored is not None
        assert (stored.direction, stored.channel, stored.text) == (
            "in",
            "webchat",
            "Hola, necesito una cita",
        )
        assert stored.external_id == f"{v.visitor_id}:c1"
        ident = await s.scalar(
            select(ContactIdentity).where(
                ContactIdentity.kind == "email", ContactIdentity.value == "lucia@example.org"
            )
        )
        assert ident is None, "an unverified e-mail must not become an identity"

    # The same client_id again (a retry after a lost ack): same id, nothing new stored.
    await sock.send({"type": "message", "client_id": "c1", "text": "Hola, necesito una cita"})
    again = await sock.until(is_type("ack"))
    assert (again["id"], again["duplicate"]) == (ack["id"], True)
    assert await count_messages(rt, channel="webchat", direction="in") == 1


async def test_auto_ack_status_and_live_agent_reply(rt: Runtime, new_visitor: Any) -> None:
    # Patients see the public name the policy gives, never the internal display name.
    rt.policy = rt.policy.model_copy(update={"public_names": {"ana@clinic.example": "Ana"}})
    agent_id, token = await make_agent(
        rt, name="Ana (bookings)", email="ana@clinic.example", role="agent_l1", presence="offline"
    )
    v = await new_visitor()
    sock = await v.socket()
    await sock.recv()  # status: none
    await sock.send({"type": "message", "client_id": "a", "text": "My appointment is tomorrow"})

    ack = await sock.until(is_type("ack"))
    own = await sock.until(message_from("in"))
    assert own["id"] == ack["id"]
    assert own["client_id"] == "a"
    assert own["author"] == {"type": "visitor", "name": None}
    wait_ack = await sock.until(message_from("out"))
    assert wait_ack["kind"] == "ack"
    assert wait_ack["author"]["type"] == "system"
    status = await sock.until(is_type("status"))
    assert status["state"] == "queued"
    assert status["queue"] == "first_line"
    assert status["expected_wait_minutes"] >= 1

    conv_id = ack["conversation_id"]
    async with httpx.AsyncClient(base_url=v.base_url) as api:
        r = await api.post(
            f"/api/v1/conversations/{conv_id}/messages",
            json={"text": "See you at 10:00 <b>sharp</b>"},
            headers=auth(token),
        )
        assert r.status_code == 201, r.text
        note = await api.post(
            f"/api/v1/conversations/{conv_id}/messages",
            json={"text": "internal: VIP", "internal": True},
            headers=auth(token),
        )
        assert note.status_code == 201
    await OutboxWorker(rt).run_once()

    reply = await sock.until(message_from("out"))
    assert reply["text"] == "See you at 10:00 <b>sharp</b>"
    assert reply["author"] == {"type": "agent", "name": "Ana"}
    assigned = await sock.until(is_type("status"))
    assert assigned["state"] == "assigned"
    assert assigned["agent"] == "Ana"
    # Notes never reach the visitor.
    assert all("internal" not in f.get("text", "") for f in await sock.quiet(0.6))
    async with rt.db.session() as s:
        stored = await s.get(Message, r.json()["id"])
        assert stored is not None
        assert stored.delivery_status == "available"

    await sock.send({"type": "read", "id": reply["id"]})
    await sock.send({"type": "read", "id": reply["id"]})  # a repeat records nothing
    await sock.send({"type": "read", "id": own["id"]})  # not a reply: ignored
    await sock.quiet(0.4)
    async with rt.db.session() as s:
        reads = list(await s.scalars(select(Event).where(Event.type == "message.read")))
    assert [e.data["message_id"] for e in reads] == [reply["id"]]
    assert agent_id


async def test_replay_after_reconnect_sends_exactly_what_was_missed_in_order(
    rt: Runtime, new_visitor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "PAGE", 2)  # the replay spans several pages
    _, token = await make_agent(rt, name="Ana", role="agent_l1", presence="offline")
    v = await new_visitor()
    sock = await v.socket()
    await sock.send({"type": "message", "client_id": "m1", "text": "first"})
    ack = await sock.until(is_type("ack"))
    seen = await sock.until(message_from("out"))  # the wait acknowledgement
    last_seen = max(ack["id"], seen["id"])
    await sock.close()

    # While the visitor is away: three replies, delivered by the outbox as "available".
    async with httpx.AsyncClient(base_url=v.base_url) as api:
        for i in range(3):
            r = await api.post(
                f"/api/v1/conversations/{ack['conversation_id']}/messages",
                json={"text": f"reply {i}"},
                headers=auth(token),
            )
            assert r.status_code == 201
    await OutboxWorker(rt).run_once()

    back = await v.socket(since=last_seen)
    frames = [f for f in await back.quiet(0.8) if f["type"] == "message"]
    assert [f["text"] for f in frames] == ["reply 0", "reply 1", "reply 2"]
    assert [f["id"] for f in frames] == sorted(f["id"] for f in frames)

    # Without `since`, the whole history, in order.
    fresh = await v.socket()
    history = [f for f in await fresh.quiet(0.8) if f["type"] == "message"]
    assert [f["text"] for f in history][0] == "first"
    assert [f["text"] for f in history][-3:] == ["reply 0", "reply 1", "reply 2"]
    assert len(history) == 5
    assert [f["id"] for f in history] == sorted(f["id"] for f in history)


async def test_second_tab_sees_messages_from_the_first(rt: Runtime, new_visitor: Any) -> None:
    v = await new_visitor()
    tab1, tab2 = await v.socket(), await v.socket()
    await tab1.recv()
    await tab2.recv()
    await tab1.send({"type": "message", "client_id": "x1", "text": "from tab one"})
    ack = await tab1.until(is_type("ack"))
    echoed = await tab2.until(message_from("in"))
    assert (echoed["id"], echoed["client_id"]) == (ack["id"], "x1")
    # Nothing is sent twice to one socket, however many wake-ups it got.
    await tab1.quiet(0.6)
    ids = [f["id"] for f in tab1.frames if f["type"] == "message"]
    assert len(ids) == len(set(ids))


async def test_agent_typing_reaches_the_visitor(rt: Runtime, new_visitor: Any) -> None:
    _, token = await make_agent(rt, name="Ana", role="agent_l1", presence="offline")
    v = await new_visitor()
    sock = await v.socket()
    await sock.send({"type": "message", "client_id": "t1", "text": "hello"})
    ack = await sock.until(is_type("ack"))
    async with httpx.AsyncClient(base_url=v.base_url) as api:
        r = await api.post(
            f"/webchat/conversations/{ack['conversation_id']}/typing", headers=auth(token)
        )
        assert r.status_code == 200
        assert r.json() == {"sockets": 1}
        unauth = await api.post(f"/webchat/conversations/{ack['conversation_id']}/typing")
        assert unauth.status_code == 401
    assert (await sock.until(is_type("typing")))["author"] == "agent"


async def test_reply_reaches_a_socket_on_another_instance(
    rt: Runtime, webchat: WebchatChannel, new_visitor: Any
) -> None:
    """Instance B holds the visitor's socket; instance A takes the reply and runs the
    outbox, so B is never woken in-process: its poll must bring the reply."""
    from tests.integration.channels.webchat.conftest import TEST_CONFIG, webchat_app
    from tests.support.server import serve

    other = Runtime(
        settings=rt.settings,
        db=rt.db,
        policy=rt.policy,
        channels={"webchat": WebchatChannel(TEST_CONFIG)},
        clock=rt.clock,
    )
    _, token = await make_agent(rt, name="Ana", role="agent_l1", presence="offline")
    v = await new_visitor()
    async with serve(webchat_app(other)) as b_url:
        v.base_url = b_url  # the same token works on every instance
        sock = await v.socket()
        await sock.send({"type": "message", "client_id": "b1", "text": "on instance B"})
        ack = await sock.until(is_type("ack"))
        async with httpx.AsyncClient(base_url=str(v.http.base_url)) as api_a:
            r = await api_a.post(
                f"/api/v1/conversations/{ack['conversation_id']}/messages",
                json={"text": "answered on A"},
                headers=auth(token),
            )
            assert r.status_code == 201
        await OutboxWorker(rt).run_once()  # A's worker wakes A's hub only
        reply = await sock.until(lambda f: f.get("text") == "answered on A", wait_s=3)
        assert reply["direction"] == "out"
        await sock.close()
