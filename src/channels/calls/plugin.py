"""The calls channel's registration: call-log webhooks only (a call log carries no reply)."""

from __future__ import annotations

from typing import Any

from channels.base import ChannelAdapter, ChannelPlugin
from channels.calls.webhooks import api_router


def build(settings: Any, db: Any) -> ChannelAdapter | None:
    return None


PLUGIN = ChannelPlugin(name="calls", build=build, router=api_router)
