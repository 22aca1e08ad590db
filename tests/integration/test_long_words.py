"""One very long word through every inbound channel: accepted, stored once and whole, routed.

Security finding: routing built every prefix of every token, so one long word cost quadratic
time and memory (a 20,000-letter word took seconds, a 100,000-character Telegram text grew
the process to 10 GB). Routing now reads a capped part of the text and cuts long tokens, so
it is linear. Each case here sends one word as long as the channel lets a customer send
(200,000 characters unless the channel documents a smaller limit, noted where it applies) and
only has to complete: timing belongs to bench/, not here. Both database backends (`rt`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select
from websockets.asyncio.client import connect

from channels.email.adapter import EmailChannel
from channels.email.webhook import api_router as email_router
from channels.telegram import TelegramChannel
from channels.webchat import WebchatChannel, WebchatConfig
from models import Conversation, Message, Queue
from router.api import create_app
from router.runtime import Runtime
from tests.conftest import ADMIN
from tests.integration.channels.calls.conftest import _mount as mount_calls
from tests.integration.channels.calls.support import (
    PUBLIC_URL,
    TWILIO_TOKEN,
    generic_record,
    post_generic,
    post_twilio,
    twilio_params,
)
from tests.integration.channels.calls.support import SECRET as CALLS_SECRET
from tests.integration.channels.email.conftest import FROM, free_port, post_mail
from tests.integration.channels.email.conftest import SECRET as EMAIL_SECRET
from tests.integration.channels.email.support import mail
from tests.integration.channels.telegram.conftest import SECRET as TG_SECRET
from tests.integration.channels.telegram.conftest import TOKEN as TG_TOKEN
from tests.integration.channels.telegram.conftest import make_client as telegram_client
from tests.integration.channels.telegram.conftest import post_update
from tests.integration.channels.webchat.conftest import Socket, is_type, webchat_app, ws_url
from tests.support.server import serve
from tests.support.telegram_server import FakeBotAPI, load_update

LONG = 200_000
# Documented per-channel limits on the customer's text (a longer one is refused with a 4xx
# or, for e-mail, kept to its cap): the app API's `AppMessage.text` and the generic call log's
# `transcript` (max_length=20_000), e-mail's `MAX_TEXT_CHARS` (200,000) and web chat's
# default `max_text_chars` (4000, within its default 16 KiB frame).
APP_MAX = 20_000
GENERIC_TRANSCRIPT_MAX = 20_000
WEBCHAT_DEFAULT_MAX = WebchatConfig().max_text_chars


def word(n: int) -> str:
    return "a" * n


async def inbound(rt: Runtime, channel: str) -> list[Message]:
    async with rt.db.session() as s:
        stmt = select(Message).where(Message.channel == channel, Message.direction == "in")
        return list(await s.scalars(stmt.order_by(Message.id)))


async def assert_stored_once_and_routed(rt: Runtime, channel: str, text: str) -> Message:
    """Exactly one inbound message on `channel`, its text whole, its conversation queued."""
    [msg] = await inbound(rt, channel)
    assert len(msg.text) == len(text)
    assert msg.text == text
    async with rt.db.session() as s:
        conv = await s.get(Conversation, msg.conversation_id)
        assert conv is not None
        assert conv.queue_id is not None, "routing did not complete: no queue"
        queue = await s.get(Queue, conv.queue_id)
        assert queue is not None
    return msg


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://careline.test")


# -- app REST: POST /api/v1/inbound ------------------------------------------------------------


def app_inbound(text: str, external_id: str) -> dict[str, object]:
    return {"contact": {"external_id": "u1"}, "message": {"external_id": external_id, "text": text}}


async def test_app_rest_longest_word_is_stored_and_routed(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    # The app API documents `message.text` max_length=20,000: 200,000 is a 422 that stores
    # nothing, so the word is 20,000 letters (the largest it accepts).
    refused = await client.post(
        "/api/v1/inbound", json=app_inbound(word(LONG), "too-long"), headers=ADMIN
    )
    assert refused.status_code == 422, refused.text
    assert await inbound(rt, "app") == []

    text = word(APP_MAX)
    r = await client.post("/api/v1/inbound", json=app_inbound(text, "m1"), headers=ADMIN)
    assert r.status_code == 200, r.text
    msg = await assert_stored_once_and_routed(rt, "app", text)
    assert r.json()["message_id"] == msg.id


# -- Telegram webhook --------------------------------------------------------------------------


@pytest.fixture
async def telegram_rt(rt: Runtime) -> AsyncIterator[Runtime]:
    server = FakeBotAPI()
    await server.start()
    rt.settings = rt.settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TG_TOKEN),
            "telegram_webhook_secret": SecretStr(TG_SECRET),
            "telegram_api_base": server.base,
        }
    )
    channel = TelegramChannel.from_settings(TG_TOKEN, server.base)
    rt.channels["telegram"] = channel
    try:
        yield rt
    finally:
        await channel.aclose()
        await server.stop()


async def test_telegram_200k_word_is_stored_and_routed(telegram_rt: Runtime) -> None:
    text = word(LONG)
    update = load_update("text_entities")
    update["message"]["text"] = text
    del update["message"]["entities"]
    async with telegram_client(telegram_rt) as c:
        r = await post_update(c, update)
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True, "outcome": "stored"}
    await assert_stored_once_and_routed(telegram_rt, "telegram", text)


# -- e-mail webhook ----------------------------------------------------------------------------


@pytest.fixture
def email_rt(rt: Runtime, tmp_path: Path) -> Runtime:
    rt.settings = rt.settings.model_copy(
        update={
            "webhook_secret": SecretStr(EMAIL_SECRET),
            "email_from": FROM,
            # Nothing is sent here (the acknowledgement waits in the outbox): a closed port.
            "smtp_url": SecretStr(f"smtp://127.0.0.1:{free_port()}?timeout=5"),
            "email_store_dir": str(tmp_path / "attachments"),
            # email_max_bytes: the default (10 MB).
        }
    )
    adapter = EmailChannel.from_settings(rt.settings, rt.db)
    assert adapter is not None
    rt.channels["email"] = adapter
    return rt


async def test_email_200k_word_is_stored_and_routed(email_rt: Runtime) -> None:
    # E-mail keeps MAX_TEXT_CHARS = 200,000 characters of a body: exactly that is sent, so
    # the stored text is the whole word.
    text = word(LONG)
    raw = mail(body=text)
    async with asgi_client(email_app(email_rt)) as c:
        r = await post_mail(c, raw)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "stored"
    msg = await assert_stored_once_and_routed(email_rt, "email", text)
    assert r.json()["message_id"] == msg.id


def email_app(rt: Runtime) -> FastAPI:
    app = create_app(runtime=rt)
    if "/webhooks/email" not in {getattr(r, "path", None) for r in app.routes}:
        app.include_router(email_router)
    app.state.runtime = rt  # ASGITransport does not run the lifespan
    return app


# -- calls: Twilio transcription callback and generic JSON call log ----------------------------


@pytest.fixture
async def calls_client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    rt.settings = rt.settings.model_copy(
        update={
            "twilio_auth_token": SecretStr(TWILIO_TOKEN),
            "webhook_secret": SecretStr(CALLS_SECRET),
            "public_url": PUBLIC_URL,
        }
    )
    app = create_app(runtime=rt)
    mount_calls(app)
    app.state.runtime = rt
    async with asgi_client(app) as c:
        yield c


async def test_calls_twilio_200k_voicemail_transcript_is_stored_and_routed(
    calls_client: httpx.AsyncClient, rt: Runtime
) -> None:
    # A voicemail's `TranscriptionText` is the call webhooks' longest free text and the one
    # routed; it has no cap of its own (only the 1 MB webhook body limit).
    text = word(LONG)
    params = twilio_params("transcription_voicemail", rt.clock, TranscriptionText=text)  # type: ignore[arg-type]
    r = await post_twilio(calls_client, params)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "stored"
    msg = await assert_stored_once_and_routed(rt, "calls", text)
    assert (msg.kind, msg.channel_meta["call_status"]) == ("call", "voicemail")


async def test_calls_generic_longest_voicemail_transcript_is_stored_and_routed(
    calls_client: httpx.AsyncClient, rt: Runtime
) -> None:
    # The generic call log documents `transcript` max_length=20,000 (200,000 is a 422 that
    # stores nothing), so the word is 20,000 letters, the largest it accepts.
    refused = await post_generic(
        calls_client, generic_record("voicemail_crisis_es", call_id="long-1", transcript=word(LONG))
    )
    assert refused.status_code == 422, refused.text
    assert await inbound(rt, "calls") == []

    text = word(GENERIC_TRANSCRIPT_MAX)
    r = await post_generic(
        calls_client, generic_record("voicemail_crisis_es", call_id="long-2", transcript=text)
    )
    assert r.status_code == 200, r.text
    assert r.json()["duplicate"] is False
    msg = await assert_stored_once_and_routed(rt, "calls", text)
    assert r.json()["message_id"] == msg.id


# -- web chat: a message frame over a real WebSocket -------------------------------------------


async def send_over_webchat(rt: Runtime, config: WebchatConfig, text: str) -> dict[str, object]:
    """Open a session, connect the socket under uvicorn, send one message; its ack."""
    rt.channels["webchat"] = WebchatChannel(config)
    async with (
        serve(webchat_app(rt)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
    ):
        r = await http.post("/webchat/sessions", json={})
        assert r.status_code == 201, r.text
        sock = Socket(await connect(ws_url(base_url, r.json()["token"])))
        try:
            assert (await sock.recv())["type"] == "status"
            await sock.send({"type": "message", "client_id": "long", "text": text})
            ack = await sock.until(is_type("ack"), wait_s=30)
        finally:
            await sock.close()
    return ack


async def test_webchat_longest_frame_with_default_limits_is_stored_and_routed(
    rt: Runtime,
) -> None:
    # Web chat's default limits (max_text_chars=4000, max_frame_bytes=16 KiB) close the socket
    # with 1009 for anything longer, so the word is 4000 letters, the largest a frame may carry.
    config = WebchatConfig(secret="webchat-test-secret")
    text = word(WEBCHAT_DEFAULT_MAX)
    assert len(json.dumps({"type": "message", "client_id": "long", "text": text})) <= (
        config.max_frame_bytes
    )
    ack = await send_over_webchat(rt, config, text)
    assert ack["duplicate"] is False
    msg = await assert_stored_once_and_routed(rt, "webchat", text)
    assert ack["id"] == msg.id


async def test_webchat_200k_word_with_raised_limits_is_stored_and_routed(rt: Runtime) -> None:
    # An operator may raise CARELINE_WEBCHAT_MAX_TEXT_CHARS / _MAX_FRAME_BYTES: then a 200,000-
    # letter word reaches routing over the socket, and must not freeze it either.
    config = WebchatConfig(
        secret="webchat-test-secret", max_text_chars=LONG, max_frame_bytes=LONG + 1024
    )
    text = word(LONG)
    ack = await send_over_webchat(rt, config, text)
    assert ack["duplicate"] is False
    msg = await assert_stored_once_and_routed(rt, "webchat", text)
    assert ack["id"] == msg.id
