"""The one small interface every channel implements."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from models.messages import ChannelName, DeliveryResult, OutboundMessage


class DeliveryError(Exception):
    """A channel refused or failed a delivery.

    `retryable` says whether the outbox should try again (network error, 429, 5xx) or
    dead-letter the item now (bot blocked, address rejected); `retry_after` honours the
    provider's own back-off hint.
    """

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        unreachable: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        # The recipient can never be reached here again (bot blocked, address gone): the
        # identity is marked so agents see it and no further replies are queued there.
        self.unreachable = unreachable


@runtime_checkable
class ChannelAdapter(Protocol):
    """Sends replies on one channel. Inbound parsing lives in each channel's module as pure
    functions (`normalise`) next to its webhook route, because each provider's payload differs.
    """

    name: ClassVar[ChannelName]

    async def send(self, msg: OutboundMessage) -> DeliveryResult:
        """Deliver `msg` or raise `DeliveryError`."""
        ...

    async def aclose(self) -> None:
        """Release connections (HTTP clients, SMTP) at shutdown."""
        ...
