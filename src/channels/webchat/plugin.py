"""The web chat channel's registration: the adapter, the socket and widget routes, and the
mail fallback for replies the visitor never saw, and the rating request on resolution."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelAdapter, ChannelPlugin
from channels.webchat.adapter import WebchatChannel, WebchatConfig
from channels.webchat.fallback import run_fallback
from channels.webchat.routes import api_router
from models import Conversation
from router.flows import satisfaction


def build(settings: Any, db: Any) -> ChannelAdapter:
    return WebchatChannel(WebchatConfig.from_settings(settings))


class WebchatHooks:
    async def on_resolved(self, session: AsyncSession, rt: Any, conversation: Conversation) -> None:
        # A message of kind "csat": the widget shows it with five buttons and answers with a
        # `rate` frame on its socket.
        await satisfaction.ask(session, rt, conversation, "webchat")


# Idle unless the email channel is configured; SKIP LOCKED makes N instances safe.
PLUGIN = ChannelPlugin(
    name="webchat",
    build=build,
    router=api_router,
    workers=(("webchat-fallback", run_fallback),),
    hooks=WebchatHooks(),
)
