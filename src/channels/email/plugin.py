"""The email channel's registration: SMTP out (when configured), the raw-MIME webhook, the
IMAP poller, and the rating links sent on resolution."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelAdapter, ChannelPlugin
from channels.email import rating
from channels.email.adapter import EmailChannel
from channels.email.imap import run_imap
from channels.email.webhook import api_router as webhook_router
from models import Conversation


def build(settings: Any, db: Any) -> ChannelAdapter | None:
    # The adapter reads thread headers (In-Reply-To, References) from the database.
    return EmailChannel.from_settings(settings, db)


class EmailHooks:
    async def on_resolved(self, session: AsyncSession, rt: Any, conversation: Conversation) -> None:
        # One signed link per score (GET /email/rate).
        await rating.ask(session, rt, conversation)


api_router = APIRouter()
api_router.include_router(webhook_router)
api_router.include_router(rating.api_router)

# The poller is idle unless CARELINE_IMAP_URL is set; de-dup makes two pollers harmless.
PLUGIN = ChannelPlugin(
    name="email",
    build=build,
    router=api_router,
    workers=(("imap", run_imap),),
    hooks=EmailHooks(),
)
