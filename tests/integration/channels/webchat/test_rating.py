"""The web chat's rating request on resolution: a message of kind "csat" on the visitor's
socket, answered with a `rate` frame; once per conversation, never for a crisis unless the
policy says so, and a bad or foreign frame never stores a score."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from models import Conversation, Event
from router.decide.policy import SatisfactionPolicy
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.conftest import ADMIN
from tests.integration.channels.webchat.conftest import is_type
from tests.support.factories import count_messages, count_rows


def csat_frame(f: dict[str, Any]) -> bool:
    return f.get("type") == "message" and f.get("kind") == "csat"


async def status(http: httpx.AsyncClient, conv_id: int, value: str) -> None:
    r = await http.post(
        f"/api/v1/conversations/{conv_id}/status", json={"status": value}, headers=ADMIN
    )
    assert r.status_code == 200, r.text


async def chat(new_visitor: Any, text: str = "Hola, necesito una cita") -> tuple[Any, Any, int]:
    v = await new_visitor(locale="es")
    sock = await v.socket()
    await sock.send({"type": "message", "client_id": "c1", "text": text})
    ack = await sock.until(is_type("ack"))
    return v, sock, int(ack["conversation_id"])


async def test_resolve_shows_the_request_and_the_score_lands_once(
    rt: Runtime, http: httpx.AsyncClient, new_visitor: Any
) -> None:
    _, sock, conv_id = await chat(new_visitor)
    await status(http, conv_id, "resolved")
    await OutboxWorker(rt).run_once()
    request = await sock.until(csat_frame)
    assert request["direction"] == "out"
    assert request["rated"] is None
    assert "1" in request["text"]

    await sock.send({"type": "rate", "id": request["id"], "score": 4})
    rated = await sock.until(is_type("rated"))
    assert rated == {"type": "rated", "id": request["id"], "score": 4, "duplicate": False}
    # Again, or another score: the first answer stays.
    await sock.send({"type": "rate", "id": request["id"], "score": 1})
    again = await sock.until(is_type("rated"))
    assert (again["score"], again["duplicate"]) == (4, True)
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        assert conv.csat == 4
        [event] = list(await s.scalars(select(Event).where(Event.type == "conversation.rated")))
        assert (event.data or {})["channel"] == "webchat"

    # Reopened and resolved again: not asked twice.
    await status(http, conv_id, "open")
    await status(http, conv_id, "resolved")
    assert await count_messages(rt, conversation_id=conv_id, kind="csat") == 1


async def test_a_replayed_request_carries_its_score(
    rt: Runtime, http: httpx.AsyncClient, new_visitor: Any
) -> None:
    v, sock, conv_id = await chat(new_visitor)
    await status(http, conv_id, "resolved")
    request = await sock.until(csat_frame)
    await sock.send({"type": "rate", "id": request["id"], "score": 5})
    await sock.until(is_type("rated"))
    fresh = await v.socket()
    replayed = await fresh.until(csat_frame)
    assert replayed["rated"] == 5


async def test_bad_and_foreign_rate_frames_store_nothing(
    rt: Runtime, http: httpx.AsyncClient, new_visitor: Any
) -> None:
    v, sock, conv_id = await chat(new_visitor)
    await status(http, conv_id, "resolved")
    request = await sock.until(csat_frame)

    # Another visitor cannot rate it: the same answer as a missing id.
    other = await new_visitor()
    theirs = await other.socket()
    await theirs.send({"type": "rate", "id": request["id"], "score": 1})
    refused = await theirs.until(is_type("error"))
    assert refused["detail"] == "no such rating request"
    # Not a rating request (the visitor's own message): refused the same way.
    await sock.send({"type": "rate", "id": request["id"] - 1, "score": 2})
    assert (await sock.until(is_type("error")))["detail"] == "no such rating request"

    for bad in (0, 6, "4", 4.5, True, None):
        s2 = await v.socket()
        await s2.send({"type": "rate", "id": request["id"], "score": bad})
        code, _ = await s2.closed()
        assert code == 4400, bad
        await s2.close()
    s3 = await v.socket()
    await s3.send({"type": "rate", "id": "x", "score": 4})
    assert (await s3.closed())[0] == 4400
    assert await count_rows(rt, Event, Event.type == "conversation.rated") == 0
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        assert conv.csat is None


async def test_a_crisis_chat_is_asked_only_with_the_policy_flag(
    rt: Runtime, http: httpx.AsyncClient, new_visitor: Any
) -> None:
    crisis = "Quiero suicidarme esta noche, ya tengo las pastillas"
    _, _, conv_id = await chat(new_visitor, crisis)
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        assert "crisis" in (conv.tags or [])
    await status(http, conv_id, "resolved")
    assert await count_messages(rt, conversation_id=conv_id, kind="csat") == 0

    rt.policy = rt.policy.model_copy(
        update={"satisfaction": SatisfactionPolicy(ask_after_crisis=True)}
    )
    _, _, later = await chat(new_visitor, crisis)
    await status(http, later, "resolved")
    assert await count_messages(rt, conversation_id=later, kind="csat") == 1
