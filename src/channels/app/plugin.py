"""The app channel's registration: the adapter, the inbound and rating routes, and the
rating request on resolution."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channels import signing
from channels.app.adapter import AppChannel
from channels.app.routes import api_router
from channels.base import ChannelAdapter, ChannelPlugin
from models import Conversation
from router.flows import satisfaction


def build(settings: Any, db: Any) -> ChannelAdapter:
    # Always present: without APP_CALLBACK_URL the app fetches replies instead.
    return AppChannel(
        settings.app_callback_url,
        signing.callback_key(settings),
        legacy_secret=signing.legacy_secret(settings),
    )


class AppHooks:
    async def on_resolved(self, session: AsyncSession, rt: Any, conversation: Conversation) -> None:
        # Delivered like a reply (callback or pull) with kind "csat"; the app shows its own
        # 1–5 control and posts the score to POST /api/v1/inbound/rating.
        await satisfaction.ask(session, rt, conversation, "app")


PLUGIN = ChannelPlugin(name="app", build=build, router=api_router, hooks=AppHooks())
