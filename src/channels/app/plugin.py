"""The app channel's registration."""

from __future__ import annotations

from typing import Any

from channels import signing
from channels.app.adapter import AppChannel
from channels.app.routes import api_router
from channels.base import ChannelAdapter, ChannelPlugin


def build(settings: Any, db: Any) -> ChannelAdapter:
    # Always present: without APP_CALLBACK_URL the app fetches replies instead.
    return AppChannel(
        settings.app_callback_url,
        signing.callback_key(settings),
        legacy_secret=signing.legacy_secret(settings),
    )


PLUGIN = ChannelPlugin(name="app", build=build, router=api_router)
