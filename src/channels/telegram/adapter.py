"""Outbound Telegram: replies through aiogram's `Bot`, vendor errors mapped for the outbox.

Bot API URLs contain the bot token, so no URL and no aiohttp error text (which may quote
the URL) is ever logged or put into a `DeliveryError`.
"""

from __future__ import annotations

import asyncio
import html
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.exceptions import (
    AiogramError,
    ClientDecodeError,
    TelegramAPIError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    ForceReply,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from pydantic import ValidationError

from channels.base import DeliveryError, FileUnavailable
from channels.telegram.normalise import FILE_URL_PREFIX, external_id
from channels.telegram.split import CAPTION_LIMIT, split_text, utf16_len
from models.messages import AttachmentRef, DeliveryResult, OutboundMessage
from models.vocab import ChannelName

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | ForceReply
# Parts of a multi-part reply already delivered, per outbox message: a retry after a 429 in
# the middle resumes instead of repeating them. In-process only (bounded); another instance
# retrying the same item may repeat parts, which is the outbox's at-least-once contract.
_PROGRESS_LIMIT = 10_000
_PHOTO_KINDS = frozenset({"image", "photo"})


@dataclass(frozen=True)
class _Step:
    method: Literal["text", "photo", "document"]
    text: str = ""
    media: str = ""


def make_bot(token: str, api_base: str | None = None, *, timeout: float = 30.0) -> Bot:
    """A Bot on the public Bot API, or on a local Bot API server at `api_base`."""
    api = TelegramAPIServer.from_base(api_base) if api_base else PRODUCTION
    return Bot(token, session=AiohttpSession(api=api, timeout=timeout))


def delivery_error(exc: AiogramError) -> DeliveryError:
    """Translate an aiogram error: retry what can succeed later, mark blocked users."""
    if isinstance(exc, TelegramRetryAfter):
        return DeliveryError(
            "telegram flood control (429)", retryable=True, retry_after=float(exc.retry_after)
        )
    if isinstance(exc, TelegramForbiddenError):
        # Blocked by the user or account deleted: retrying cannot help, agents must see it.
        return DeliveryError(
            f"telegram refused (403): {exc.message[:200]}", retryable=False, unreachable=True
        )
    if isinstance(exc, TelegramNetworkError | ClientDecodeError):
        return DeliveryError("telegram unreachable (network)", retryable=True)
    if isinstance(exc, TelegramServerError):
        return DeliveryError("telegram server error (5xx)", retryable=True)
    if isinstance(exc, TelegramUnauthorizedError):
        # Our token is wrong: an operator can fix it while the outbox backs off.
        return DeliveryError("telegram rejected the bot token (401)", retryable=True)
    if isinstance(exc, TelegramAPIError):
        return DeliveryError(f"telegram rejected the message: {exc.message[:200]}", retryable=False)
    return DeliveryError(f"telegram client error: {type(exc).__name__}", retryable=True)


def parse_markup(raw: Any) -> Markup | None:
    """`reply_markup` stored in a message's channel meta (JSON) → aiogram's type."""
    if not isinstance(raw, dict):
        return None
    kinds: tuple[type[Markup], ...] = (
        InlineKeyboardMarkup,
        ReplyKeyboardMarkup,
        ReplyKeyboardRemove,
        ForceReply,
    )
    keys = ("inline_keyboard", "keyboard", "remove_keyboard", "force_reply")
    for key, kind in zip(keys, kinds, strict=True):
        if key in raw:
            try:
                return kind.model_validate(raw)
            except ValidationError:
                return None
    return None


def _media(att: AttachmentRef) -> str:
    """A file id (our own reference) or a public URL that Telegram fetches itself."""
    if att.url.startswith(FILE_URL_PREFIX):
        return att.url.removeprefix(FILE_URL_PREFIX)
    if att.url.startswith(("https://", "http://")):
        return att.url
    raise DeliveryError(
        f"attachment of kind {att.kind} is not reachable by Telegram", retryable=False
    )


def plan(msg: OutboundMessage) -> list[_Step]:
    """Pure: the Bot API calls for one reply. Text goes first, split at the limit; a single
    attachment with a short text carries it as its caption instead."""
    steps: list[_Step] = []
    text = msg.text.strip()
    caption = ""
    if len(msg.attachments) == 1 and text and utf16_len(text) <= CAPTION_LIMIT:
        caption, text = text, ""
    if text:
        steps.extend(_Step("text", part) for part in split_text(text))
    for att in msg.attachments:
        method: Literal["photo", "document"] = "photo" if att.kind in _PHOTO_KINDS else "document"
        steps.append(_Step(method, caption, _media(att)))
    if not steps:
        raise DeliveryError("nothing to send (empty text, no attachments)", retryable=False)
    return steps


class RecentUpdates:
    """update_ids whose after-commit calls already ran in this process (bounded). Stored
    state is idempotent on its own (message ids, edit history, ratings); this only keeps a
    redelivered `/start` from greeting twice."""

    def __init__(self, limit: int = 10_000) -> None:
        self._ids: OrderedDict[int, None] = OrderedDict()
        self._limit = limit

    def first_time(self, update_id: int) -> bool:
        if update_id in self._ids:
            return False
        self._ids[update_id] = None
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)
        return True


class TelegramChannel:
    """The outbound adapter, plus the few direct Bot API calls the inbound side needs
    (greeting, answering a button press, fetching a file for an agent)."""

    name: ClassVar[ChannelName] = "telegram"

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._progress: OrderedDict[int, list[int]] = OrderedDict()
        self.recent = RecentUpdates()

    @classmethod
    def from_settings(cls, token: str, api_base: str | None = None) -> TelegramChannel:
        return cls(make_bot(token, api_base))

    async def send(self, msg: OutboundMessage) -> DeliveryResult:
        try:
            chat_id = int(msg.recipient)
        except ValueError:
            raise DeliveryError("recipient is not a Telegram chat id", retryable=False) from None
        steps = plan(msg)
        markup = parse_markup(msg.meta.get("reply_markup"))
        done = self._progress.setdefault(msg.message_id, [])
        self._progress.move_to_end(msg.message_id)
        while len(self._progress) > _PROGRESS_LIMIT:
            self._progress.popitem(last=False)
        try:
            for i, step in enumerate(steps):
                if i < len(done):
                    continue
                # Buttons belong under the last part, where the customer's eyes end up.
                last = i == len(steps) - 1
                sent = await self._call(chat_id, step, markup if last else None)
                done.append(sent.message_id)
        except AiogramError as exc:
            raise delivery_error(exc) from exc
        self._progress.pop(msg.message_id, None)
        return DeliveryResult(
            status="sent",
            external_id=external_id(chat_id, done[0]),
            meta={"telegram_message_ids": list(done)},
        )

    async def _call(self, chat_id: int, step: _Step, markup: Markup | None) -> Message:
        # Everything we send is plain text: escape it so `<`/`&` never break HTML parsing.
        text = html.escape(step.text, quote=False)
        if step.method == "text":
            return await self.bot.send_message(
                chat_id, text, parse_mode="HTML", reply_markup=markup
            )
        if step.method == "photo":
            return await self.bot.send_photo(
                chat_id, step.media, caption=text or None, parse_mode="HTML", reply_markup=markup
            )
        return await self.bot.send_document(
            chat_id, step.media, caption=text or None, parse_mode="HTML", reply_markup=markup
        )

    async def send_text(self, chat_id: int, text: str, reply_markup: Markup | None = None) -> None:
        """Direct send, outside the outbox (greetings); raises `DeliveryError`."""
        parts = split_text(text)
        try:
            for i, part in enumerate(parts):
                markup = reply_markup if i == len(parts) - 1 else None
                await self._call(chat_id, _Step("text", part), markup)
        except AiogramError as exc:
            raise delivery_error(exc) from exc

    async def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        """Stop the button's spinner (Telegram expects an answer to every callback query)."""
        try:
            await self.bot.answer_callback_query(callback_id, text=text)
        except AiogramError as exc:
            raise delivery_error(exc) from exc

    def opens(self, url: str) -> bool:
        return url.startswith(FILE_URL_PREFIX)

    async def open_attachment(self, url: str) -> AsyncIterator[bytes]:
        return await self.open_file(url.removeprefix(FILE_URL_PREFIX))

    async def open_file(self, file_id: str, *, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """Stream a file's bytes (getFile, then the file URL). The first chunk is read before
        returning, so "gone"/"too big"/"unreachable" surface as `FileUnavailable` while the
        caller can still answer with a proper status."""
        try:
            f = await self.bot.get_file(file_id)
        except (TelegramNetworkError, TelegramServerError, ClientDecodeError) as exc:
            raise FileUnavailable("telegram unreachable", retryable=True) from exc
        except TelegramAPIError as exc:
            raise FileUnavailable(f"telegram: {exc.message[:200]}", retryable=False) from exc
        if not f.file_path:
            raise FileUnavailable("telegram gave no file path", retryable=False)
        api = self.bot.session.api
        stream: AsyncGenerator[bytes, None]
        if api.is_local:
            # A local Bot API server in --local mode hands out paths on a shared disk.
            stream = _read_local(Path(api.wrap_local_file.to_local(f.file_path)), chunk_size)
        else:
            url = api.file_url(self.bot.token, f.file_path)
            stream = self.bot.session.stream_content(url, chunk_size=chunk_size)
        try:
            first = await anext(stream, b"")
        except aiohttp.ClientResponseError as exc:
            await stream.aclose()
            raise FileUnavailable(
                f"telegram file download answered {exc.status}", retryable=exc.status >= 500
            ) from None  # the exception text carries the URL, i.e. the token
        except (aiohttp.ClientError, TimeoutError, OSError):
            await stream.aclose()
            raise FileUnavailable("telegram file download failed", retryable=True) from None
        return _prepend(first, stream)

    async def aclose(self) -> None:
        await self.bot.session.close()


async def _prepend(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()  # release the HTTP connection even if the client went away


async def _read_local(path: Path, chunk_size: int) -> AsyncGenerator[bytes, None]:
    fh = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(fh.read, chunk_size):
            yield chunk
    finally:
        await asyncio.to_thread(fh.close)
