"""The web chat channel's registration: the adapter, the socket and widget routes, and the
mail fallback for replies the visitor never saw."""

from __future__ import annotations

from typing import Any

from channels.base import ChannelAdapter, ChannelPlugin
from channels.webchat.adapter import WebchatChannel, WebchatConfig
from channels.webchat.fallback import run_fallback
from channels.webchat.routes import api_router


def build(settings: Any, db: Any) -> ChannelAdapter:
    return WebchatChannel(WebchatConfig.from_settings(settings))


# Idle unless the email channel is configured; SKIP LOCKED makes N instances safe.
PLUGIN = ChannelPlugin(
    name="webchat", build=build, router=api_router, workers=(("webchat-fallback", run_fallback),)
)
