"""The Telegram webhook end to end: authenticity, de-dup, content types, edits, /start,
deep links and phone sharing, against the stand-in Bot API server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from channels.telegram import TelegramChannel
from channels.telegram.link import mint_link_token
from models import Attachment, Contact, ContactIdentity, Conversation, Event, Message, OutboxItem
from router.runtime import Runtime
from tests.conftest import ADMIN
from tests.integration.channels.telegram.conftest import (
    LINK_SECRET,
    LUCIA,
    drain,
    make_client,
    post_update,
)
from tests.support.factories import count_rows as count
from tests.support.telegram_server import FakeBotAPI, load_update


async def identities(rt: Runtime, contact_id: int) -> set[tuple[str, str, bool]]:
    async with rt.db.session() as s:
        rows = await s.scalars(
            select(ContactIdentity).where(ContactIdentity.contact_id == contact_id)
        )
        return {(i.kind, i.value, i.verified) for i in rows}


async def tg_identity(rt: Runtime, user_id: int = LUCIA) -> ContactIdentity:
    async with rt.db.session() as s:
        ident = await s.scalar(
            select(ContactIdentity).where(
                ContactIdentity.kind == "telegram", ContactIdentity.value == str(user_id)
            )
        )
        assert ident is not None
        return ident


async def stored(rt: Runtime, external_id: str) -> Message:
    async with rt.db.session() as s:
        msg = await s.scalar(
            select(Message).where(Message.channel == "telegram", Message.external_id == external_id)
        )
        assert msg is not None
        return msg


# -- authenticity ------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", "tg-webhook_secret-012345678"])
async def test_bad_or_missing_secret_is_401_and_stores_nothing(
    tg_client: httpx.AsyncClient, rt: Runtime, secret: str | None
) -> None:
    r = await post_update(tg_client, load_update("text_entities"), secret=secret)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 401
    assert await count(rt, Message) == 0


@pytest.mark.parametrize("missing", ["telegram_webhook_secret", "telegram_bot_token"])
async def test_not_configured_is_404(rt: Runtime, tg: TelegramChannel, missing: str) -> None:
    rt.settings = rt.settings.model_copy(update={missing: None})
    async with make_client(rt) as client:
        r = await post_update(client, load_update("text_entities"))
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert await count(rt, Message) == 0


async def test_empty_secret_setting_is_not_configured(rt: Runtime, tg: TelegramChannel) -> None:
    rt.settings = rt.settings.model_copy(update={"telegram_webhook_secret": SecretStr("")})
    async with make_client(rt) as client:
        r = await post_update(client, load_update("text_entities"), secret="")
    assert r.status_code == 404


# -- messages ----------------------------------------------------------------------------------


async def test_text_message_opens_a_conversation_and_is_acknowledged(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    r = await post_update(tg_client, load_update("text_entities"))
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True, "outcome": "stored"}
    msg = await stored(rt, f"{LUCIA}:101")
    assert msg.text.startswith("Hola 👋 necesito cambiar mi cita del viernes")
    assert msg.channel_meta["update_id"] == 900000001
    conv = await tg_client.get(f"/api/v1/conversations/{msg.conversation_id}", headers=ADMIN)
    assert conv.json()["channel"] == "telegram"
    ident = await tg_identity(rt)
    assert ident.contact_id == conv.json()["contact_id"]

    # The expected-wait acknowledgement goes to the same chat through the outbox.
    assert tg_api.of("sendMessage") == []
    await drain(rt)
    [call] = tg_api.of("sendMessage")
    assert call.params["chat_id"] == str(LUCIA)
    assert call.params["parse_mode"] == "HTML"
    async with rt.db.session() as s:
        ack = await s.scalar(select(Message).where(Message.kind == "ack"))
        assert ack is not None
        assert call.params["text"] == ack.text
        assert ack.delivery_status == "sent"


async def test_duplicate_update_changes_nothing(tg_client: httpx.AsyncClient, rt: Runtime) -> None:
    first = await post_update(tg_client, load_update("text_entities"))
    assert first.json()["outcome"] == "stored"
    events_before = await count(rt, Event)
    again = await post_update(tg_client, load_update("text_entities"))
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    # The same message under a new update_id (a client resend) is still the same message.
    resent = load_update("text_entities")
    resent["update_id"] += 1000
    assert (await post_update(tg_client, resent)).json()["outcome"] == "duplicate"
    assert await count(rt, Message, Message.direction == "in") == 1
    assert await count(rt, OutboxItem) == 1
    assert await count(rt, Event) == events_before


@pytest.mark.parametrize(
    ("name", "kind", "text"),
    [
        ("text_rtl", None, "مرحبا، أحتاج إلى موعد مع الطبيب غدًا 🙏 שלום"),
        ("forwarded", None, "Recuerde traer los análisis de sangre en ayunas."),
        ("photo_caption", "image", "La receta, página 2"),
        ("document", "file", "Informe del hospital"),
        ("voice", "voice", ""),
        ("audio", "audio", ""),
        ("video", "video", "Así suena la rodilla al doblarla"),
        ("video_note", "video_note", ""),
        ("sticker", "sticker", ""),
        ("animation", "animation", ""),
        ("location", "location", ""),
        ("venue", "location", ""),
        ("contact_own", "contact", ""),
        ("contact_other", "contact", ""),
    ],
)
async def test_every_content_type_is_stored_with_references(
    tg_client: httpx.AsyncClient, rt: Runtime, name: str, kind: str | None, text: str
) -> None:
    r = await post_update(tg_client, load_update(name))
    assert r.json()["outcome"] == "stored", r.text
    async with rt.db.session() as s:
        msg = await s.scalar(select(Message).where(Message.direction == "in"))
        assert msg is not None
        conv_id = msg.conversation_id
    page = (await tg_client.get(f"/api/v1/conversations/{conv_id}/messages", headers=ADMIN)).json()
    first = page["items"][0]
    assert (first["direction"], first["channel"], first["text"]) == ("in", "telegram", text)
    kinds = [a["kind"] for a in first["attachments"]]
    assert kinds == ([kind] if kind else [])
    for a in first["attachments"]:
        # References only: a Telegram file id, a geo: or tel: URI; never bytes.
        assert a["url"].startswith(("telegram:file/", "geo:", "tel:"))


@pytest.mark.parametrize(
    "name", ["group_message", "channel_post", "my_chat_member", "dice", "bot_sender", "poll"]
)
async def test_groups_channels_and_unknown_updates_are_acknowledged_and_ignored(
    tg_client: httpx.AsyncClient, rt: Runtime, name: str
) -> None:
    r = await post_update(tg_client, load_update(name))
    assert r.status_code == 200
    # poll.json is an older Bot API shape that this aiogram no longer accepts: still 200.
    assert r.json()["outcome"] in ("ignored", "invalid")
    assert await count(rt, Message) == 0
    assert await count(rt, Contact) == 0


async def test_body_that_is_not_an_update_is_acknowledged(
    tg_client: httpx.AsyncClient, rt: Runtime
) -> None:
    r = await post_update(tg_client, {"hello": "world"})
    assert (r.status_code, r.json()["outcome"]) == (200, "invalid")


# -- edits -------------------------------------------------------------------------------------


async def test_edited_message_updates_text_and_keeps_history(
    tg_client: httpx.AsyncClient, rt: Runtime
) -> None:
    await post_update(tg_client, load_update("text_entities"))
    original = (await stored(rt, f"{LUCIA}:101")).text
    r = await post_update(tg_client, load_update("edited_message"))
    assert r.json()["outcome"] == "stored"
    msg = await stored(rt, f"{LUCIA}:101")
    assert "sábado" in msg.text
    [previous] = msg.channel_meta["history"]
    assert previous["text"] == original
    assert previous["edited_at"].startswith("2024-11-26T08:35:20")
    assert await count(rt, Event, Event.type == "message.edited") == 1

    again = await post_update(tg_client, load_update("edited_message"))
    assert again.json()["outcome"] == "duplicate"
    msg = await stored(rt, f"{LUCIA}:101")
    assert len(msg.channel_meta["history"]) == 1
    assert await count(rt, Message, Message.direction == "in") == 1


async def test_edit_of_a_message_we_never_saw_is_stored(
    tg_client: httpx.AsyncClient, rt: Runtime
) -> None:
    r = await post_update(tg_client, load_update("edited_message"))
    assert r.json()["outcome"] == "stored"
    assert "sábado" in (await stored(rt, f"{LUCIA}:101")).text


async def test_edit_that_adds_a_crisis_is_routed_again(
    tg_client: httpx.AsyncClient, rt: Runtime
) -> None:
    await post_update(tg_client, load_update("text_entities"))
    edit = load_update("edited_message")
    edit["edited_message"]["text"] = "Ya no puedo más, quiero suicidarme"
    del edit["edited_message"]["entities"]
    await post_update(tg_client, edit)
    async with rt.db.session() as s:
        conv = await s.scalar(select(Conversation))
        assert conv is not None
        assert conv.priority == "urgent"
        assert "crisis" in conv.tags
        kinds = set(await s.scalars(select(Message.kind).where(Message.direction == "out")))
    assert "crisis_ack" in kinds


# -- /start, deep links, phone sharing ---------------------------------------------------------


async def test_start_greets_in_the_users_language_and_offers_phone_sharing(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    r = await post_update(tg_client, load_update("start"))
    assert r.status_code == 200
    [call] = tg_api.of("sendMessage")
    assert call.params["chat_id"] == str(LUCIA)
    assert call.params["text"] == rt.policy.greeting_text("es")
    keyboard = call.json("reply_markup")
    assert keyboard["keyboard"][0][0]["request_contact"] is True
    assert keyboard["one_time_keyboard"] is True
    # /start is not a support request: no conversation, but the contact is known.
    assert await count(rt, Conversation) == 0
    await tg_identity(rt)
    # A redelivered /start does not greet twice.
    await post_update(tg_client, load_update("start"))
    assert len(tg_api.of("sendMessage")) == 1


async def app_message(
    client: httpx.AsyncClient, user: str, text: str = "Hola desde la app", **contact: Any
) -> dict[str, Any]:
    r = await client.post(
        "/api/v1/inbound",
        json={
            "contact": {"external_id": user, **contact},
            "message": {"external_id": f"app-{user}-{len(text)}", "text": text},
        },
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def test_deep_link_links_telegram_to_an_existing_app_contact(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    app_conv = await app_message(tg_client, "9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab")
    conv = (
        await tg_client.get(f"/api/v1/conversations/{app_conv['conversation_id']}", headers=ADMIN)
    ).json()
    # The Telegram user wrote before (a contact of their own), then follows the app's link.
    await post_update(tg_client, load_update("text_entities"))
    token = mint_link_token(
        LINK_SECRET,
        "9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab",
        expires_at=rt.now() + timedelta(hours=1),
    )
    r = await post_update(tg_client, load_update("start_deeplink", TOKEN=token))
    assert r.status_code == 200
    assert (await tg_identity(rt)).contact_id == conv["contact_id"]
    assert {(k, v) for k, v, _ in await identities(rt, conv["contact_id"])} == {
        ("app", "9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab"),
        ("telegram", str(LUCIA)),
    }
    # The Telegram conversation moved along with its contact.
    async with rt.db.session() as s:
        contacts = set(await s.scalars(select(Conversation.contact_id)))
    assert contacts == {conv["contact_id"]}
    assert len(tg_api.of("sendMessage")) == 1, "greeted"


async def test_deep_link_for_an_app_user_not_seen_yet(
    tg_client: httpx.AsyncClient, rt: Runtime
) -> None:
    token = mint_link_token(LINK_SECRET, "u-77", expires_at=rt.now() + timedelta(hours=1))
    await post_update(tg_client, load_update("start_deeplink", TOKEN=token))
    contact_id = (await tg_identity(rt)).contact_id
    later = await app_message(tg_client, "u-77")
    conv = (
        await tg_client.get(f"/api/v1/conversations/{later['conversation_id']}", headers=ADMIN)
    ).json()
    assert conv["contact_id"] == contact_id


@pytest.mark.parametrize("forged", ["forged", "expired", "no-secret"])
async def test_forged_or_expired_deep_link_links_nothing(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI, forged: str
) -> None:
    await app_message(tg_client, "u-1")
    expires = rt.now() + (timedelta(hours=-1) if forged == "expired" else timedelta(hours=1))
    secret = "someone-elses-secret" if forged == "forged" else LINK_SECRET
    if forged == "no-secret":
        rt.settings = rt.settings.model_copy(update={"webhook_secret": None})
    token = mint_link_token(secret, "u-1", expires_at=expires)
    await post_update(tg_client, load_update("start_deeplink", TOKEN=token))
    ident = await tg_identity(rt)
    assert ("app", "u-1") not in {(k, v) for k, v, _ in await identities(rt, ident.contact_id)}
    assert len(tg_api.of("sendMessage")) == 1, "greeted all the same"


async def test_shared_own_phone_merges_with_the_app_contact(
    tg_client: httpx.AsyncClient, rt: Runtime
) -> None:
    app_conv = await app_message(tg_client, "u-5", phone="+34 612 345 678", verified=True)
    app_contact = (
        await tg_client.get(f"/api/v1/conversations/{app_conv['conversation_id']}", headers=ADMIN)
    ).json()["contact_id"]
    await post_update(tg_client, load_update("text_entities"))  # a separate contact so far
    assert (await tg_identity(rt)).contact_id != app_contact
    await post_update(tg_client, load_update("contact_own"))
    contact_id = (await tg_identity(rt)).contact_id
    async with rt.db.session() as s:
        live = await s.get(Contact, contact_id)
        assert live is not None
        assert live.merged_into_id is None
    assert ("phone", "+34612345678", True) in await identities(rt, contact_id)
    assert {(k, v) for k, v, _ in await identities(rt, contact_id)} == {
        ("phone", "+34612345678"),
        ("app", "u-5"),
        ("telegram", str(LUCIA)),
    }
    async with rt.db.session() as s:
        merged = await s.get(Contact, app_contact)
        assert merged is not None
        # Both conversations now belong to the one surviving contact.
        owners = set(await s.scalars(select(Conversation.contact_id)))
    assert owners == {contact_id}
    assert contact_id == app_contact or merged.merged_into_id == contact_id


async def test_someone_elses_contact_card_verifies_nothing(
    tg_client: httpx.AsyncClient, rt: Runtime
) -> None:
    await app_message(tg_client, "mama", phone="+34 699 111 222")
    await post_update(tg_client, load_update("contact_other"))
    ident = await tg_identity(rt)
    assert {k for k, _, _ in await identities(rt, ident.contact_id)} == {"telegram"}
    async with rt.db.session() as s:
        contact = await s.get(Contact, ident.contact_id)
        assert contact is not None
        assert "unverified_phone" not in contact.attributes


async def test_greeting_skips_phone_request_when_phone_is_verified(
    tg_client: httpx.AsyncClient, rt: Runtime, tg_api: FakeBotAPI
) -> None:
    await post_update(tg_client, load_update("contact_own"))
    await post_update(tg_client, load_update("start"))
    [greeting] = [c for c in tg_api.of("sendMessage") if "reply_markup" not in c.params]
    assert greeting.params["text"] == rt.policy.greeting_text("es")


async def test_attachment_rows_are_references(tg_client: httpx.AsyncClient, rt: Runtime) -> None:
    await post_update(tg_client, load_update("document"))
    async with rt.db.session() as s:
        att = await s.scalar(select(Attachment))
        assert att is not None
        assert (att.url, att.mime, att.size, att.name) == (
            "telegram:file/BQACAgIAAxkBAAIBaGc-doc",
            "application/pdf",
            245120,
            "informe médico.pdf",
        )


async def test_nul_text_and_overlong_file_id_are_not_a_500(
    tg_client: httpx.AsyncClient, rt: Runtime
) -> None:
    update = load_update("document")
    update["message"]["document"]["file_id"] = "F" * 3000
    update["message"]["caption"] = "informe\x00 adjunto"
    update["message"]["from"]["first_name"] = "Lu\x00cía"
    r = await post_update(tg_client, update)
    assert r.status_code == 200, r.text
    async with rt.db.session() as s:
        att = await s.scalar(select(Attachment))
        assert att is not None
        assert len(att.url) <= 2000
        msg = await s.scalar(select(Message).where(Message.direction == "in"))
        assert msg is not None
        assert "\x00" not in msg.text
