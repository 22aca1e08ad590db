"""The app's rating request on resolution (a reply of kind "csat") and its rating endpoint;
also where the shared rules (once, never after a crisis unless the policy says so, only on
the reply channel) are shown end to end."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from models import Conversation, Event, Message
from router.decide.policy import SatisfactionPolicy
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.conftest import ADMIN, auth, make_agent
from tests.support.factories import app_inbound, count_messages, count_rows
from tests.support.fakes import FakeChannel

CRISIS = "I want to kill myself tonight, I have the pills ready"


async def set_status(client: httpx.AsyncClient, conv_id: int, status: str) -> None:
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/status", json={"status": status}, headers=ADMIN
    )
    assert r.status_code == 200, r.text


async def drain(rt: Runtime) -> None:
    worker = OutboxWorker(rt)
    while await worker.run_once():
        pass


async def rate(
    client: httpx.AsyncClient, conv_id: int, score: object, user: str = "u-1", **kw: object
) -> httpx.Response:
    body = {"contact_external_id": user, "conversation_id": conv_id, "score": score} | kw
    return await client.post("/api/v1/inbound/rating", json=body, headers=ADMIN)


async def csat_requests(rt: Runtime, conv_id: int) -> int:
    return await count_messages(rt, conversation_id=conv_id, kind="csat")


async def test_resolving_asks_once_and_the_app_posts_the_score(
    client: httpx.AsyncClient, rt: Runtime, fake_app_channel: FakeChannel
) -> None:
    conv_id = await app_inbound(client, "u-1", "m-1", "Hola, quiero cambiar mi cita")
    await set_status(client, conv_id, "resolved")
    await drain(rt)
    [request] = [m for m in fake_app_channel.sent if m.kind == "csat"]
    assert (request.recipient, request.conversation_id) == ("u-1", conv_id)
    assert "1" in request.text
    assert "5" in request.text
    # The app that pulls sees it too, marked as the rating request.
    pulled = await client.get(
        "/api/v1/inbound/messages", params={"contact_external_id": "u-1"}, headers=ADMIN
    )
    assert [m["kind"] for m in pulled.json()["items"]][-1] == "csat"

    # Reopened and resolved again: not asked a second time.
    await set_status(client, conv_id, "open")
    await set_status(client, conv_id, "resolved")
    assert await csat_requests(rt, conv_id) == 1

    r = await rate(client, conv_id, 4)
    assert r.status_code == 200, r.text
    assert r.json() == {"conversation_id": conv_id, "score": 4, "duplicate": False}
    # The first answer wins: a repeat, or a change of mind, changes nothing.
    again = await rate(client, conv_id, 2)
    assert again.json() == {"conversation_id": conv_id, "score": 4, "duplicate": True}
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        assert conv.csat == 4
        [event] = list(await s.scalars(select(Event).where(Event.type == "conversation.rated")))
        assert (event.data or {})["score"] == 4
        assert (event.data or {})["channel"] == "app"
    read = (await client.get(f"/api/v1/conversations/{conv_id}", headers=ADMIN)).json()
    assert read["csat"] == 4


async def test_bad_scores_and_foreign_conversations_are_refused(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    conv_id = await app_inbound(client, "u-1", "m-1", "Hola, quiero cambiar mi cita")
    other_id = await app_inbound(client, "u-2", "m-2", "Hola, una factura")
    # Not asked yet: nothing to answer.
    assert (await rate(client, conv_id, 4)).status_code == 409
    await set_status(client, conv_id, "resolved")
    for bad in (0, 6, "4", 4.5, True, None):
        r = await rate(client, conv_id, bad)
        assert r.status_code == 422, (bad, r.text)
    assert (await rate(client, conv_id, 4, extra="x")).status_code == 422
    # Another user's conversation, a missing one: the same 404.
    assert (await rate(client, conv_id, 4, user="u-2")).status_code == 404
    assert (await rate(client, 999_999, 4)).status_code == 404
    assert (await rate(client, other_id, 4, user="u-1")).status_code == 404
    # Only the app integration (and admins) may post scores.
    _, l1 = await make_agent(rt, name="L1", role="agent_l1")
    r = await client.post(
        "/api/v1/inbound/rating",
        json={"contact_external_id": "u-1", "conversation_id": conv_id, "score": 4},
        headers=auth(l1),
    )
    assert r.status_code == 403
    assert await count_rows(rt, Event, Event.type == "conversation.rated") == 0
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        assert conv.csat is None


async def test_a_crisis_conversation_is_not_asked_unless_the_policy_says_so(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    conv_id = await app_inbound(client, "u-1", "m-1", CRISIS)
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        assert "crisis" in (conv.tags or [])
    await set_status(client, conv_id, "resolved")
    assert await csat_requests(rt, conv_id) == 0

    rt.policy = rt.policy.model_copy(
        update={"satisfaction": SatisfactionPolicy(ask_after_crisis=True)}
    )
    later = await app_inbound(client, "u-3", "m-3", CRISIS)
    await set_status(client, later, "resolved")
    assert await csat_requests(rt, later) == 1


async def test_asked_only_on_the_channel_it_replies_on(
    client: httpx.AsyncClient, rt: Runtime, fake_app_channel: FakeChannel
) -> None:
    """An app conversation with every channel's hook registered gets one request, on app."""
    conv_id = await app_inbound(client, "u-1", "m-1", "Hola")
    await set_status(client, conv_id, "resolved")
    async with rt.db.session() as s:
        channels = list(
            await s.scalars(
                select(Message.channel).where(
                    Message.conversation_id == conv_id, Message.kind == "csat"
                )
            )
        )
    assert channels == ["app"]


async def test_the_satisfaction_report_counts_ratings_from_any_channel(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    conv_id = await app_inbound(client, "u-1", "m-1", "Hola, quiero cambiar mi cita")
    await set_status(client, conv_id, "resolved")
    assert (await rate(client, conv_id, 3)).status_code == 200
    rt.clock.advance(minutes=1)  # type: ignore[attr-defined]  # the window ends before now
    r = await client.get("/api/v1/reports/satisfaction", params={"channel": "app"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    [overall] = [row for row in r.json()["rows"] if row["queue"] == "all"]
    assert (overall["ratings"], overall["score_3"], overall["average"]) == (1, 1, 3.0)
