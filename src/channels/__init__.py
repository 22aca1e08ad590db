"""Channel adapters. The registry is an explicit dict: what is configured is what exists."""

from __future__ import annotations

from channels.app import AppChannel
from channels.base import ChannelAdapter, DeliveryError
from channels.telegram import TelegramChannel
from channels.webchat import WebchatChannel, WebchatConfig

__all__ = ["ChannelAdapter", "DeliveryError", "build_registry"]


def build_registry(
    *,
    app_callback_url: str | None,
    webhook_secret: str | None,
    legacy_secret: str | None = None,
    telegram_bot_token: str | None = None,
    telegram_api_base: str | None = None,
    webchat: WebchatConfig | None = None,
) -> dict[str, ChannelAdapter]:
    """Adapters for the channels that are configured; a missing one dead-letters its replies."""
    registry: dict[str, ChannelAdapter] = {
        "app": AppChannel(app_callback_url, webhook_secret, legacy_secret=legacy_secret),
        "webchat": WebchatChannel(webchat or WebchatConfig()),
    }
    if telegram_bot_token:
        registry["telegram"] = TelegramChannel.from_settings(telegram_bot_token, telegram_api_base)
    return registry
