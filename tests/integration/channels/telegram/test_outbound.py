"""Replies through the outbox and aiogram's real client to the stand-in Bot API server:
round trip, splitting, 429/5xx retries, 403 → unreachable, media, rating buttons."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from channels.base import DeliveryError
from channels.telegram import TelegramChannel
from channels.telegram.handling import ask_rating
from models import Attachment, ContactIdentity, Conversation, Event, Message, OutboxItem
from models.messages import OutboundMessage
from router.flows.outbound import enqueue_outbound
from router.repo.queues import queue_by_name
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.conftest import ADMIN, auth, make_agent
from tests.integration.channels.telegram.conftest import LUCIA, drain, post_update
from tests.support.factories import count_rows as count
from tests.support.fakes import FakeClock
from tests.support.telegram_server import FakeBotAPI, load_update


async def customer_conversation(client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI) -> int:
    """Lucía writes; the acknowledgement is delivered and forgotten. The conversation id."""
    r = await post_update(client, load_update("text_entities"))
    assert r.json()["outcome"] == "stored", r.text
    await drain(rt)
    tg_api.calls.clear()
    async with rt.db.session() as s:
        conv_id = await s.scalar(select(Conversation.id))
        assert conv_id is not None
        return int(conv_id)


async def agent_reply(client: httpx.AsyncClient, conv_id: int, text: str) -> int:
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"text": text}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def outbox_item(rt: Runtime, message_id: int) -> OutboxItem:
    async with rt.db.session() as s:
        item = await s.scalar(select(OutboxItem).where(OutboxItem.message_id == message_id))
        assert item is not None
        return item


async def message(rt: Runtime, message_id: int) -> Message:
    async with rt.db.session() as s:
        msg = await s.get(Message, message_id)
        assert msg is not None
        return msg


async def test_agent_reply_arrives_in_the_same_chat(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    mid = await agent_reply(tg_client, conv_id, "Hola Lucía: el <viernes> a las 9 & 10 🙂")
    await drain(rt)
    [call] = tg_api.of("sendMessage")
    assert call.token == "123456:TEST-token-abcdefghijklmnop"
    assert call.params["chat_id"] == str(LUCIA)
    # HTML parse mode with everything escaped: the customer sees exactly what the agent wrote.
    assert call.params["parse_mode"] == "HTML"
    assert call.params["text"] == "Hola Lucía: el &lt;viernes&gt; a las 9 &amp; 10 🙂"
    msg = await message(rt, mid)
    assert msg.delivery_status == "sent"
    assert msg.external_id == f"{LUCIA}:{tg_api._next_message_id}"
    assert (await outbox_item(rt, mid)).status == "delivered"


async def test_customer_reply_to_our_message_threads_back(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    mid = await agent_reply(tg_client, conv_id, "¿Le va bien el sábado?")
    await drain(rt)
    ours = (await message(rt, mid)).external_id
    assert ours is not None
    reply = load_update("text_entities")
    reply["update_id"] += 50
    reply["message"]["message_id"] = 150
    reply["message"]["reply_to_message"] = {
        "message_id": int(ours.split(":")[1]),
        "date": 1732610100,
        "chat": reply["message"]["chat"],
        "from": {"id": 1, "is_bot": True, "first_name": "Careline"},
        "text": "¿Le va bien el sábado?",
    }
    await post_update(tg_client, reply)
    async with rt.db.session() as s:
        new = await s.scalar(select(Message).where(Message.external_id == f"{LUCIA}:150"))
        assert new is not None
        assert new.conversation_id == conv_id
        assert new.channel_meta["reply_to"] == ours


async def test_long_reply_is_split_in_order(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    paragraphs = [f"Párrafo {i}. " + ("Indicaciones detalladas. " * 120).strip() for i in range(3)]
    mid = await agent_reply(tg_client, conv_id, "\n\n".join(paragraphs))
    await drain(rt)
    sent = [c.params["text"] for c in tg_api.of("sendMessage")]
    assert sent == paragraphs
    assert all(len(t) <= 4096 for t in sent)
    msg = await message(rt, mid)
    assert len(msg.channel_meta["telegram_message_ids"]) == 3


async def test_429_is_retried_after_retry_after_then_delivered(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI, clock: FakeClock
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    mid = await agent_reply(tg_client, conv_id, "Confirmado para el viernes.")
    tg_api.fail("sendMessage", 429, "Too Many Requests: retry after 120", retry_after=120)
    worker = OutboxWorker(rt)
    assert await worker.run_once() == 1
    item = await outbox_item(rt, mid)
    assert (item.status, item.attempts) == ("pending", 1)
    assert item.next_attempt_at >= clock.now + timedelta(seconds=120), "honours retry_after"
    assert await worker.run_once() == 0, "not before retry_after"
    clock.advance(seconds=121)
    assert await worker.run_once() == 1
    item = await outbox_item(rt, mid)
    assert (item.status, item.attempts) == ("delivered", 2)
    assert [c.params["text"] for c in tg_api.of("sendMessage")] == [
        "Confirmado para el viernes."
    ] * 2


async def test_429_in_the_middle_of_a_split_reply_resumes_without_repeating(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI, clock: FakeClock
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    parts = ["Primera parte. " + "a" * 3000, "Segunda parte. " + "b" * 3000]
    await agent_reply(tg_client, conv_id, "\n\n".join(parts))
    worker = OutboxWorker(rt)
    tg_api.fail("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3, after=1)
    await worker.run_once()
    clock.advance(seconds=600)
    await worker.run_once()
    texts = [c.params["text"] for c in tg_api.of("sendMessage")]
    # part 1 ok, part 2 refused (429), then only part 2 again.
    assert texts == [parts[0], parts[1], parts[1]]


async def test_5xx_and_network_errors_are_retried(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI, clock: FakeClock
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    mid = await agent_reply(tg_client, conv_id, "Le llamamos mañana.")
    tg_api.fail("sendMessage", 500, "Internal Server Error")
    worker = OutboxWorker(rt)
    await worker.run_once()
    item = await outbox_item(rt, mid)
    assert (item.status, item.last_error) == ("pending", "telegram server error (5xx)")
    clock.advance(seconds=rt.settings.outbox_backoff_max_s)
    await worker.run_once()
    assert (await outbox_item(rt, mid)).status == "delivered"


async def test_network_error_is_retryable(rt: Runtime, tg_api: FakeBotAPI) -> None:
    # Nothing listens on the stopped server's port any more.
    closed = TelegramChannel.from_settings("123456:TEST-token-abcdefghijklmnop", tg_api.base)
    await tg_api.stop()
    out = OutboundMessage(
        channel="telegram", message_id=1, conversation_id=1, recipient="5", text="hola"
    )
    try:
        with pytest.raises(DeliveryError) as exc:
            await closed.send(out)
    finally:
        await closed.aclose()
    assert exc.value.retryable
    assert "TEST-token" not in exc.value.reason


async def test_403_marks_the_identity_unreachable_and_fails_visibly(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    mid = await agent_reply(tg_client, conv_id, "¿Sigue ahí?")
    tg_api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    assert await OutboxWorker(rt).run_once() == 1
    item = await outbox_item(rt, mid)
    assert (item.status, item.attempts) == ("dead", 1), "no endless retries"
    assert (await message(rt, mid)).delivery_status == "failed"
    async with rt.db.session() as s:
        ident = await s.scalar(select(ContactIdentity).where(ContactIdentity.kind == "telegram"))
        assert ident is not None
        assert ident.unreachable
    assert await count(rt, Event, Event.type == "message.failed") == 1
    # Agents see it: a new reply there is refused instead of queued.
    r = await tg_client.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"text": "¿Hola?"}, headers=ADMIN
    )
    assert r.status_code == 409
    # Writing to the bot again means it was unblocked: replies flow again.
    back = load_update("text_entities")
    back["update_id"] += 7
    back["message"]["message_id"] = 777
    await post_update(tg_client, back)
    await agent_reply(tg_client, conv_id, "¡Bienvenida de nuevo!")
    await drain(rt)
    assert tg_api.of("sendMessage")[-1].params["text"] == "¡Bienvenida de nuevo!"


async def test_agent_attachments_go_as_photo_and_document(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        one = await enqueue_outbound(s, rt, conv, "Su receta", now=rt.now())
        s.add(Attachment(message_id=one.id, kind="image", url="telegram:file/AgAC-rx", mime=None))
        two = await enqueue_outbound(s, rt, conv, "Informe y factura", now=rt.now())
        s.add(Attachment(message_id=two.id, kind="file", url="https://files.example/inf.pdf"))
        s.add(Attachment(message_id=two.id, kind="file", url="telegram:file/BQAC-bill"))
    await drain(rt)
    [photo] = tg_api.of("sendPhoto")
    assert (photo.params["chat_id"], photo.params["photo"], photo.params["caption"]) == (
        str(LUCIA),
        "AgAC-rx",
        "Su receta",
    )
    assert [c.params["text"] for c in tg_api.of("sendMessage")] == ["Informe y factura"]
    docs = tg_api.of("sendDocument")
    assert [d.params["document"] for d in docs] == [
        "https://files.example/inf.pdf",
        "BQAC-bill",
    ]
    assert all("caption" not in d.params for d in docs)


async def test_rating_buttons_and_callback_store_csat(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        asked = await ask_rating(s, rt, conv)
        assert asked is not None
    await drain(rt)
    [question] = tg_api.of("sendMessage")
    assert question.params["chat_id"] == str(LUCIA)
    buttons = question.json("reply_markup")["inline_keyboard"][0]
    assert [b["callback_data"] for b in buttons] == [f"csat:{conv_id}:{n}" for n in range(1, 6)]

    press = load_update("callback_query", **{'"csat:1:5"': f'"csat:{conv_id}:4"'})
    r = await post_update(tg_client, press)
    assert r.json()["outcome"] == "stored"
    [answer] = tg_api.of("answerCallbackQuery")
    assert answer.params["callback_query_id"] == "4382bfdwdsb323b2d9"
    assert answer.params["text"] == "¡Gracias por tu valoración!"
    conv_read = (await tg_client.get(f"/api/v1/conversations/{conv_id}", headers=ADMIN)).json()
    assert conv_read["csat"] == 4
    # A redelivered press changes nothing and is not answered twice.
    again = await post_update(tg_client, press)
    assert again.json()["outcome"] == "duplicate"
    assert len(tg_api.of("answerCallbackQuery")) == 1
    assert await count(rt, Event, Event.type == "conversation.rated") == 1
    # Already rated: not asked again.
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        assert await ask_rating(s, rt, conv) is None


async def resolve(client: httpx.AsyncClient, conv_id: int, status: str = "resolved") -> None:
    r = await client.post(
        f"/api/v1/conversations/{conv_id}/status", json={"status": status}, headers=ADMIN
    )
    assert r.status_code == 200, r.text


async def test_resolving_asks_on_telegram_once_even_when_resolved_again(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    await resolve(tg_client, conv_id)
    await drain(rt)
    [question] = tg_api.of("sendMessage")
    assert "reply_markup" in question.params
    await resolve(tg_client, conv_id, "open")
    await resolve(tg_client, conv_id)
    await drain(rt)
    assert len(tg_api.of("sendMessage")) == 1, "asked once per conversation"
    assert await count(rt, Message, Message.kind == "csat") == 1


async def test_a_crisis_on_telegram_is_not_asked_to_rate(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        conv.tags = ["crisis", "self_harm"]
    await resolve(tg_client, conv_id)
    assert await count(rt, Message, Message.kind == "csat") == 0
    # A crafted press with a score outside 1-5 is ignored (no score, no event).
    press = load_update("callback_query", **{'"csat:1:5"': f'"csat:{conv_id}:9"'})
    r = await post_update(tg_client, press)
    assert r.json()["outcome"] == "ignored"


async def test_someone_else_cannot_rate_a_conversation(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    press = load_update("callback_query", **{'"csat:1:5"': f'"csat:{conv_id}:1"'})
    press["callback_query"]["from"]["id"] = 987654321
    r = await post_update(tg_client, press)
    assert r.json()["outcome"] == "ignored"
    assert len(tg_api.of("answerCallbackQuery")) == 1, "the spinner is stopped all the same"
    async with rt.db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        assert conv.csat is None


async def test_no_rating_question_without_a_telegram_chat(
    tg_client: httpx.AsyncClient, rt: Runtime
) -> None:
    r = await tg_client.post(
        "/api/v1/inbound",
        json={"contact": {"external_id": "u-9"}, "message": {"external_id": "m", "text": "Hola"}},
        headers=ADMIN,
    )
    async with rt.db.session() as s:
        conv = await s.get(Conversation, r.json()["conversation_id"])
        assert conv is not None
        assert await ask_rating(s, rt, conv) is None


# -- agents fetch customer files -----------------------------------------------------------


async def photo_attachment(client: httpx.AsyncClient, rt: Runtime) -> int:
    await post_update(client, load_update("photo_caption"))
    async with rt.db.session() as s:
        att_id = await s.scalar(select(Attachment.id))
        assert att_id is not None
        return int(att_id)


async def test_agent_downloads_a_customer_photo(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    content = bytes(range(256)) * 1000  # several chunks
    tg_api.add_file("AgACAgIAAxkBAAIBZ2c-large", content, "photos/file_7.jpg")
    att_id = await photo_attachment(tg_client, rt)
    # A prescription photo routes to second line: a second-line agent reads it.
    _, token = await make_agent(rt, name="Ana", role="agent_l2")
    r = await tg_client.get(f"/api/v1/attachments/{att_id}/content", headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.content == content
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["x-content-type-options"] == "nosniff"
    [get_file] = tg_api.of("getFile")
    assert get_file.params["file_id"] == "AgACAgIAAxkBAAIBZ2c-large"
    assert tg_api.downloads == ["photos/file_7.jpg"]


async def test_download_needs_an_agent_who_may_read_the_conversation(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    tg_api.add_file("AgACAgIAAxkBAAIBZ2c-large", b"jpeg", "photos/file_7.jpg")
    att_id = await photo_attachment(tg_client, rt)
    url = f"/api/v1/attachments/{att_id}/content"
    assert (await tg_client.get(url)).status_code == 401
    _, integration = await make_agent(rt, name="App", role="integration")
    assert (await tg_client.get(url, headers=auth(integration))).status_code == 403
    # A second-line conversation is invisible to first line.
    async with rt.db.session() as s:
        conv = await s.scalar(select(Conversation))
        assert conv is not None
        conv.queue_id = (await queue_by_name(s, "second_line")).id
    _, l1 = await make_agent(rt, name="Ana", role="agent_l1")
    assert (await tg_client.get(url, headers=auth(l1))).status_code == 404
    assert (
        await tg_client.get(f"/api/v1/attachments/{att_id + 99}/content", headers=ADMIN)
    ).status_code == 404
    assert tg_api.of("getFile") == []


async def test_download_of_a_file_telegram_no_longer_has(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    att_id = await photo_attachment(tg_client, rt)
    r = await tg_client.get(f"/api/v1/attachments/{att_id}/content", headers=ADMIN)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    tg_api.fail("getFile", 502, "Bad Gateway")
    r = await tg_client.get(f"/api/v1/attachments/{att_id}/content", headers=ADMIN)
    assert r.status_code == 503


async def test_locations_have_no_content_to_download(
    tg_client: httpx.AsyncClient, rt: Runtime
) -> None:
    await post_update(tg_client, load_update("location"))
    async with rt.db.session() as s:
        att_id = await s.scalar(select(Attachment.id))
    r = await tg_client.get(f"/api/v1/attachments/{att_id}/content", headers=ADMIN)
    assert r.status_code == 404


async def test_resolving_asks_for_a_rating_on_telegram(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    conv_id = await customer_conversation(tg_client, rt, tg_api)
    r = await tg_client.post(
        f"/api/v1/conversations/{conv_id}/status", json={"status": "resolved"}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    await drain(rt)
    sent = tg_api.of("sendMessage")
    assert len(sent) == 1
    assert str(sent[0].params["chat_id"]) == "123456789"
    markup = sent[0].params["reply_markup"]
    markup = markup if isinstance(markup, dict) else json.loads(markup)
    assert markup["inline_keyboard"][0][4]["callback_data"] == f"csat:{conv_id}:5"
