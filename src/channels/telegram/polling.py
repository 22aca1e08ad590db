"""`careline telegram poll` (development without a public URL) and `careline telegram
set-webhook` (production: register `PUBLIC_URL/webhooks/telegram` with the secret)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from aiogram.exceptions import AiogramError, ClientDecodeError, TelegramAPIError
from aiogram.types import Update
from pydantic import ValidationError

from channels.base import ChannelSetupError
from channels.telegram.adapter import TelegramChannel, make_bot
from channels.telegram.handling import handle_update, run_effects
from router.bootstrap import build_runtime, sync_queues
from router.runtime import Runtime
from router.settings import Settings

log = logging.getLogger(__name__)

# What we handle; Telegram then doesn't send the rest (chat member changes, polls, ...).
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
WEBHOOK_PATH = "/webhooks/telegram"
# Telegram's rule for `secret_token`.
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class TelegramSetupError(ChannelSetupError):
    """Configuration is missing or Telegram refused it; the message is safe to print."""


def _token(settings: Settings) -> str:
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    if not token:
        raise TelegramSetupError("CARELINE_TELEGRAM_BOT_TOKEN is not set")
    return token


async def set_webhook(settings: Settings) -> str:
    """Register the webhook with the secret token and the update types we handle; returns
    the URL registered."""
    token = _token(settings)
    secret = (
        settings.telegram_webhook_secret.get_secret_value()
        if settings.telegram_webhook_secret
        else ""
    )
    if not _SECRET_RE.match(secret):
        raise TelegramSetupError(
            "CARELINE_TELEGRAM_WEBHOOK_SECRET must be set: 1-256 characters of A-Z a-z 0-9 _ -"
        )
    url = settings.public_url.rstrip("/") + WEBHOOK_PATH
    bot = make_bot(token, settings.telegram_api_base)
    try:
        await bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
    except TelegramAPIError as exc:
        raise TelegramSetupError(f"Telegram refused the webhook: {exc.message}") from None
    except AiogramError as exc:
        raise TelegramSetupError(f"cannot reach Telegram ({type(exc).__name__})") from None
    finally:
        await bot.session.close()
    return url


class Poller:
    """Long polling: each update is stored in its own unit of work, and the offset moves past
    it only after the commit, so a crash re-reads it (and de-dup makes that a no-op)."""

    def __init__(
        self,
        rt: Runtime,
        channel: TelegramChannel,
        *,
        timeout_s: int = 30,
        error_pause_s: float = 2.0,
        max_failures: int = 5,
    ) -> None:
        self.rt = rt
        self.channel = channel
        self.timeout_s = timeout_s
        self.error_pause_s = error_pause_s
        self.max_failures = max_failures
        self.offset: int | None = None
        self._failures = 0

    async def run_once(self) -> int:
        """Fetch one batch and apply it; returns how many updates were taken."""
        try:
            updates: list[tuple[int, Update | None]] = [
                (u.update_id, u)
                for u in await self.channel.bot.get_updates(
                    offset=self.offset,
                    timeout=self.timeout_s,
                    allowed_updates=ALLOWED_UPDATES,
                    # The HTTP request must outlive Telegram's long-poll wait.
                    request_timeout=self.timeout_s + 10,
                )
            ]
        except ClientDecodeError as exc:
            # aiogram validates the batch as a whole: one update it cannot read would fail
            # every poll from now on. Take the readable ones, step over the rest.
            salvaged = _salvage(exc.data)
            if salvaged is None:
                raise  # not an answer at all (a proxy's error page): retried by `run`
            updates = salvaged
        for update_id, upd in updates:
            if upd is None:
                log.warning("telegram update unreadable, skipped", extra={"update_id": update_id})
            elif not await self._apply(upd):
                break
            self.offset = update_id + 1
        return len(updates)

    async def _apply(self, upd: Update) -> bool:
        try:
            async with self.rt.db.session() as session:
                handled = await handle_update(session, self.rt, upd)
        except Exception as exc:
            # Only the type: an exception's text can quote the message.
            self._failures += 1
            log.error(
                "telegram update failed",
                extra={"update_id": upd.update_id, "error": type(exc).__name__},
            )
            if self._failures < self.max_failures:
                await asyncio.sleep(self.error_pause_s)
                return False
            log.error("telegram update skipped", extra={"update_id": upd.update_id})
        else:
            await run_effects(self.channel, handled)
        self._failures = 0
        return True

    async def run(self, stop: asyncio.Event) -> None:
        # getUpdates is refused while a webhook is set; pending updates stay queued.
        await self.channel.bot.delete_webhook(drop_pending_updates=False)
        while not stop.is_set():
            fetch = asyncio.ensure_future(self.run_once())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not fetch.done():
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fetch
                break
            try:
                fetch.result()
            except AiogramError as exc:
                log.warning("telegram polling failed", extra={"error": type(exc).__name__})
                await asyncio.sleep(self.error_pause_s)


def _salvage(data: Any) -> list[tuple[int, Update | None]] | None:
    """The updates of a raw getUpdates answer, one by one (None where unreadable)."""
    result = data.get("result") if isinstance(data, dict) and data.get("ok") else None
    if not isinstance(result, list):
        return None
    out: list[tuple[int, Update | None]] = []
    for item in result:
        update_id = item.get("update_id") if isinstance(item, dict) else None
        if not isinstance(update_id, int):
            continue
        try:
            out.append((update_id, Update.model_validate(item)))
        except ValidationError:
            out.append((update_id, None))
    return out


async def run_polling(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Entry point of `careline telegram poll`: replies go out from `careline serve`'s
    outbox worker (run it alongside), this process only takes updates in."""
    _token(settings)
    rt = build_runtime(settings)
    try:
        channel = rt.channels.get("telegram")
        if not isinstance(channel, TelegramChannel):
            raise TelegramSetupError("the telegram channel is not in the channel registry")
        await sync_queues(rt)
        await Poller(rt, channel).run(stop or asyncio.Event())
    finally:
        for ch in rt.channels.values():
            await ch.aclose()
        await rt.db.dispose()
