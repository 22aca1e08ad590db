"""The interface between the router and the channels: the adapter that sends, the optional
file source and conversation hooks, and the plug-in record a channel registers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from models import Conversation
from models.messages import DeliveryResult, OutboundMessage
from models.vocab import ChannelName


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


class FileUnavailable(Exception):
    """A customer's file cannot be fetched now (`retryable`) or at all (gone, too big)."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@runtime_checkable
class FileSource(Protocol):
    """A channel that keeps customers' files on the provider's side and streams them on
    demand (Telegram). The generic attachment route asks the conversation's adapter."""

    def opens(self, url: str) -> bool:
        """Whether `url` (an attachment's stored reference) is one of this channel's files."""
        ...

    async def open_attachment(self, url: str) -> AsyncIterator[bytes]:
        """Stream the file's bytes or raise `FileUnavailable` before the first byte."""
        ...


class ConversationHooks(Protocol):
    """What a channel may add to the router's use cases, called inside their unit of work
    (the session is not committed yet). `rt` is the `router.runtime.Runtime`."""

    async def on_resolved(self, session: AsyncSession, rt: Any, conversation: Conversation) -> None:
        """A conversation was resolved (each text channel asks for a 1–5 rating through
        `router.flows.satisfaction.ask`; only the conversation's reply channel queues one)."""
        ...


# A background loop a channel runs next to the router's workers: (runtime, stop) -> None.
Worker = Callable[[Any, asyncio.Event], Coroutine[Any, Any, None]]


class ChannelSetupError(Exception):
    """A channel command's configuration is missing or the provider refused it; the message
    is safe to print."""


@dataclass(frozen=True)
class ChannelCommand:
    """A `careline <channel> <name>` command: `run(settings)` returns what to print.
    `migrate`: the database must be at the latest migration first."""

    help: str
    run: Callable[[Any], Coroutine[Any, Any, str | None]]
    migrate: bool = False


@dataclass(frozen=True)
class ChannelPlugin:
    """Everything one channel brings. `channels.registry` lists them; the router reads that
    list by name (`CARELINE_CHANNELS`) and never imports a channel itself."""

    name: ChannelName
    # The adapter from settings, or None when the channel is not configured (its replies
    # dead-letter). `db` is `router.db.Database`.
    build: Callable[[Any, Any], ChannelAdapter | None]
    router: APIRouter | None = None
    workers: tuple[tuple[str, Worker], ...] = ()
    hooks: ConversationHooks | None = None
    commands: dict[str, ChannelCommand] = field(default_factory=dict)
