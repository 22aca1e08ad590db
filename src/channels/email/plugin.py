"""The email channel's registration: SMTP out (when configured), the raw-MIME webhook, and
the IMAP poller."""

from __future__ import annotations

from typing import Any

from channels.base import ChannelAdapter, ChannelPlugin
from channels.email.adapter import EmailChannel
from channels.email.imap import run_imap
from channels.email.webhook import api_router


def build(settings: Any, db: Any) -> ChannelAdapter | None:
    # The adapter reads thread headers (In-Reply-To, References) from the database.
    return EmailChannel.from_settings(settings, db)


# The poller is idle unless CARELINE_IMAP_URL is set; de-dup makes two pollers harmless.
PLUGIN = ChannelPlugin(name="email", build=build, router=api_router, workers=(("imap", run_imap),))
