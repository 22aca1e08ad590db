"""Fakes at the seam: a channel adapter registered like a real one, and a settable clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from channels.base import DeliveryError
from models.messages import ChannelName, DeliveryResult, OutboundMessage


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


Outcome = DeliveryResult | DeliveryError | Callable[[OutboundMessage], DeliveryResult]


class FakeChannel:
    """Records what it was asked to send; answers with scripted outcomes, then success."""

    name: ClassVar[ChannelName] = "app"

    def __init__(self, name: ChannelName = "app", *, delay: float = 0.0) -> None:
        self.channel_name = name
        self.sent: list[OutboundMessage] = []
        self.script: list[Outcome] = []
        self.delay = delay

    async def send(self, msg: OutboundMessage) -> DeliveryResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.sent.append(msg)
        outcome: Outcome = self.script.pop(0) if self.script else DeliveryResult(status="sent")
        if isinstance(outcome, DeliveryError):
            raise outcome
        if isinstance(outcome, DeliveryResult):
            return outcome
        return outcome(msg)

    async def aclose(self) -> None:
        return None
