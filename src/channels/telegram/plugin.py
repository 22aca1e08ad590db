"""The Telegram channel's registration: the adapter (when a bot token is set), the webhook,
and the rating request on resolution."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelAdapter, ChannelCommand, ChannelPlugin
from channels.telegram.adapter import TelegramChannel
from channels.telegram.handling import ask_rating
from channels.telegram.polling import run_polling, set_webhook
from channels.telegram.webhook import api_router
from models import Conversation


def build(settings: Any, db: Any) -> ChannelAdapter | None:
    if not settings.telegram_bot_token:
        return None
    return TelegramChannel.from_settings(
        settings.telegram_bot_token.get_secret_value(), settings.telegram_api_base
    )


class TelegramHooks:
    async def on_resolved(self, session: AsyncSession, rt: Any, conversation: Conversation) -> None:
        await ask_rating(session, rt, conversation)


async def _set_webhook(settings: Any) -> str:
    return f"Telegram webhook set to {await set_webhook(settings)}"


async def _poll(settings: Any) -> None:
    await run_polling(settings)


PLUGIN = ChannelPlugin(
    name="telegram",
    build=build,
    router=api_router,
    hooks=TelegramHooks(),
    commands={
        "poll": ChannelCommand(
            "long-polling mode for development (run `serve` too)", _poll, migrate=True
        ),
        "set-webhook": ChannelCommand(
            "register PUBLIC_URL/webhooks/telegram with Telegram", _set_webhook
        ),
    },
)
