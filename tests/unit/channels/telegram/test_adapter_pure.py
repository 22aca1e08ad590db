"""The adapter's pure parts: which Bot API calls a reply becomes, how errors are classed."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.exceptions import (
    AiogramError,
    ClientDecodeError,
    RestartingTelegram,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup

from channels.base import DeliveryError
from channels.telegram.adapter import delivery_error, parse_markup, plan
from models.messages import AttachmentRef, OutboundMessage

METHOD = SendMessage(chat_id=1, text="x")


def out(text: str, *atts: AttachmentRef) -> OutboundMessage:
    return OutboundMessage(
        channel="telegram",
        message_id=1,
        conversation_id=1,
        recipient="1",
        text=text,
        attachments=atts,
    )


def photo(url: str = "telegram:file/AgAC-1") -> AttachmentRef:
    return AttachmentRef(kind="image", url=url)


def test_long_text_is_several_text_calls() -> None:
    steps = plan(out("a" * 5000))
    assert [s.method for s in steps] == ["text", "text"]


def test_single_attachment_carries_a_short_text_as_caption() -> None:
    steps = plan(out("Su receta", photo()))
    assert [(s.method, s.text, s.media) for s in steps] == [("photo", "Su receta", "AgAC-1")]


def test_long_text_goes_before_attachments_without_caption() -> None:
    doc = AttachmentRef(kind="file", url="https://files.example/informe.pdf")
    steps = plan(out("x" * 2000, photo(), doc))
    assert [(s.method, s.text, s.media) for s in steps] == [
        ("text", "x" * 2000, ""),
        ("photo", "", "AgAC-1"),
        ("document", "", "https://files.example/informe.pdf"),
    ]


def test_unreachable_attachment_or_nothing_to_send_is_permanent() -> None:
    with pytest.raises(DeliveryError) as exc:
        plan(out("hola", photo("s3://bucket/key")))
    assert not exc.value.retryable
    with pytest.raises(DeliveryError) as exc:
        plan(out("   "))
    assert not exc.value.retryable


@pytest.mark.parametrize(
    ("error", "retryable", "retry_after", "unreachable"),
    [
        (TelegramRetryAfter(METHOD, "Too Many Requests: retry after 7", 7), True, 7.0, False),
        (
            TelegramForbiddenError(METHOD, "Forbidden: bot was blocked by the user"),
            False,
            None,
            True,
        ),
        (
            TelegramNetworkError(METHOD, "ClientConnectorError: http://x/bot123:abc/"),
            True,
            None,
            False,
        ),
        (TelegramServerError(METHOD, "Internal Server Error"), True, None, False),
        (RestartingTelegram(METHOD, "restart"), True, None, False),
        (TelegramUnauthorizedError(METHOD, "Unauthorized"), True, None, False),
        (TelegramBadRequest(METHOD, "Bad Request: chat not found"), False, None, False),
        (ClientDecodeError("Failed to decode object", ValueError(), "<html>"), True, None, False),
    ],
)
def test_error_classes(
    error: AiogramError, retryable: bool, retry_after: float | None, unreachable: bool
) -> None:
    d = delivery_error(error)
    assert (d.retryable, d.retry_after, d.unreachable) == (retryable, retry_after, unreachable)
    assert "bot123" not in d.reason, "nothing that may carry the token goes into the reason"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ({"inline_keyboard": [[{"text": "5", "callback_data": "csat:1:5"}]]}, InlineKeyboardMarkup),
        ({"keyboard": [[{"text": "Tel", "request_contact": True}]]}, ReplyKeyboardMarkup),
        ({"something": 1}, type(None)),
        ("not a dict", type(None)),
        ({"inline_keyboard": "broken"}, type(None)),
    ],
)
def test_parse_markup(raw: Any, kind: type) -> None:
    assert isinstance(parse_markup(raw), kind)
