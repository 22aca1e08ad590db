"""normalise(): real Update JSON shapes → actions. Pure: no loop, no database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram.types import Update

from channels.telegram.normalise import (
    FILE_URL_PREFIX,
    CallbackAnswer,
    Edit,
    Ignored,
    NewMessage,
    Start,
    TelegramAction,
    e164,
    normalise,
)
from tests.support.telegram_server import load_update

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
LUCIA = 123456789


def run(name: str, **replace: str) -> TelegramAction:
    return normalise(Update.model_validate(load_update(name, **replace)), now=NOW, region="ES")


def message(name: str) -> NewMessage:
    action = run(name)
    assert isinstance(action, NewMessage), action
    assert action.message.channel == "telegram"
    assert action.message.received_at == NOW
    assert action.message.sent_at == datetime.fromtimestamp(1732610000, UTC)
    return action


def test_text_with_entities_and_emoji_keeps_raw_text_and_entities() -> None:
    action = message("text_entities")
    m = action.message
    assert m.external_id == f"{LUCIA}:101"
    assert m.text.startswith("Hola 👋 necesito cambiar mi cita del viernes.")
    assert m.sender.external_id == str(LUCIA)
    assert m.sender.name == "Lucía García"
    assert (m.sender.phone, m.sender.phone_verified) == (None, False)
    assert m.attachments == ()
    assert m.channel_meta["update_id"] == 900000001
    assert m.channel_meta["language_code"] == "es"
    # Offsets are UTF-16 units of the stored text: the emoji counts two.
    bold = m.channel_meta["entities"][0]
    raw = m.text.encode("utf-16-le")
    span = raw[bold["offset"] * 2 : (bold["offset"] + bold["length"]) * 2]
    assert span.decode("utf-16-le") == "viernes"
    assert m.channel_meta["entities"][1]["type"] == "url"


def test_rtl_text_is_stored_verbatim() -> None:
    m = message("text_rtl").message
    assert m.text == "مرحبا، أحتاج إلى موعد مع الطبيب غدًا 🙏 שלום"
    assert m.sender.name == "ليلى"
    assert m.channel_meta["language_code"] == "ar"


@pytest.mark.parametrize(
    ("name", "origin"),
    [
        ("forwarded", {"type": "user", "name": "Dra. Ruiz"}),
        ("forwarded_hidden", {"type": "hidden_user", "name": "Pedro"}),
    ],
)
def test_forwarded_message_records_origin(name: str, origin: dict[str, str]) -> None:
    m = message(name).message
    fwd = m.channel_meta["forwarded"]
    assert {k: fwd[k] for k in origin} == origin
    assert datetime.fromisoformat(fwd["date"]) < m.sent_at  # type: ignore[operator]
    assert m.sender.external_id == str(LUCIA), "the sender is who forwarded, not the origin"


@pytest.mark.parametrize(
    ("name", "text", "kind", "mime", "file_id", "extra"),
    [
        (
            "photo_caption",
            "La receta, página 2",
            "image",
            "image/jpeg",
            "AgACAgIAAxkBAAIBZ2c-large",
            {"size": 104233},
        ),
        (
            "document",
            "Informe del hospital",
            "file",
            "application/pdf",
            "BQACAgIAAxkBAAIBaGc-doc",
            {"name": "informe médico.pdf", "size": 245120},
        ),
        ("voice", "", "voice", "audio/ogg", "AwACAgIAAxkBAAIBaWc-voice", {"size": 23514}),
        (
            "audio",
            "",
            "audio",
            "audio/mpeg",
            "CQACAgIAAxkBAAIBamc-audio",
            {"name": "consulta.mp3"},
        ),
        (
            "video",
            "Así suena la rodilla al doblarla",
            "video",
            "video/mp4",
            "BAACAgIAAxkBAAIBa2c-video",
            {"name": "rodilla.mp4"},
        ),
        ("video_note", "", "video_note", "video/mp4", "DQACAgIAAxkBAAIBbGc-note", {}),
        ("sticker", "", "sticker", "image/webp", "CAACAgIAAxkBAAIBbWc-sticker", {}),
        ("animation", "", "animation", "video/mp4", "CgACAgQAAxkBAAIBbmc-anim", {}),
    ],
)
def test_media_become_file_references(
    name: str, text: str, kind: str, mime: str, file_id: str, extra: dict[str, Any]
) -> None:
    m = message(name).message
    assert m.text == text
    assert len(m.attachments) == 1, "an animation (also sent as document) is one attachment"
    att = m.attachments[0]
    assert (att.kind, att.mime, att.url) == (kind, mime, FILE_URL_PREFIX + file_id)
    for key, value in extra.items():
        assert getattr(att, key) == value
    assert att.meta["file_unique_id"]


def test_caption_entities_are_kept_for_captions() -> None:
    m = message("photo_caption").message
    assert m.channel_meta["entities"] == [{"type": "italic", "offset": 11, "length": 8}]
    assert m.channel_meta["media_group_id"] == "13612345678901234"


def test_sticker_emoji_is_kept() -> None:
    assert message("sticker").message.attachments[0].meta["emoji"] == "🙏"


def test_location_and_venue() -> None:
    loc = message("location").message.attachments[0]
    assert (loc.kind, loc.url) == ("location", "geo:40.416775,-3.70379")
    venue = message("venue").message
    assert venue.attachments[0].name == "Clínica Salud Centro"
    assert venue.attachments[0].meta == {"address": "Calle de Alcalá 100, Madrid"}
    assert venue.channel_meta["location"] == {"latitude": 40.4233, "longitude": -3.6927}


def test_own_contact_is_a_verified_phone_and_threads_to_the_question() -> None:
    m = message("contact_own").message
    assert (m.sender.phone, m.sender.phone_verified) == ("+34612345678", True)
    att = m.attachments[0]
    assert (att.kind, att.url, att.meta) == ("contact", "tel:+34612345678", {"own": True})
    assert m.thread_refs == (f"{LUCIA}:99",)


def test_someone_elses_contact_is_only_an_attachment() -> None:
    m = message("contact_other").message
    assert (m.sender.phone, m.sender.phone_verified) == (None, False)
    assert m.attachments[0].url == "tel:+34699111222"
    assert m.attachments[0].meta == {"own": False}


@pytest.mark.parametrize(("name", "payload"), [("start", None), ("start_deeplink", "abc_DEF-123")])
def test_start_command(name: str, payload: str | None) -> None:
    action = run(name, TOKEN="abc_DEF-123")
    assert isinstance(action, Start)
    assert (action.user_id, action.chat_id, action.payload) == (LUCIA, LUCIA, payload)
    assert action.language == "es"


def test_edited_message() -> None:
    action = run("edited_message")
    assert isinstance(action, Edit)
    assert action.external_id == f"{LUCIA}:101"
    assert "sábado" in action.text
    assert action.edited_at == datetime.fromtimestamp(1732610120, UTC)
    assert action.original.text == action.text


@pytest.mark.parametrize(
    ("data", "conv", "score"),
    [("csat:1:5", 1, 5), ("csat:42:1", 42, 1), ("csat:1:9", None, None), ("other", None, None)],
)
def test_callback_query(data: str, conv: int | None, score: int | None) -> None:
    action = run("callback_query", **{'"csat:1:5"': f'"{data}"'})
    assert isinstance(action, CallbackAnswer)
    assert (action.conversation_id, action.score) == (conv, score)
    assert (action.callback_id, action.user_id) == ("4382bfdwdsb323b2d9", LUCIA)


@pytest.mark.parametrize(
    "name", ["group_message", "channel_post", "my_chat_member", "dice", "bot_sender"]
)
def test_ignored(name: str) -> None:
    assert isinstance(run(name), Ignored)


def test_unknown_update_type_is_ignored() -> None:
    upd = Update.model_validate({"update_id": 5, "business_future_thing": {"x": 1}})
    assert isinstance(normalise(upd, now=NOW, region="ES"), Ignored)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("34612345678", "+34612345678"),
        ("+34612345678", "+34612345678"),
        ("79123456789", "+79123456789"),
        ("612345678", "+34612345678"),  # national form read with the default region
        ("12", None),
        ("", None),
    ],
)
def test_e164(raw: str, expected: str | None) -> None:
    assert e164(raw, "ES") == expected
