"""The web chat channel's configuration and its outbound adapter."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any, ClassVar

from channels.webchat.hub import Hub
from channels.webchat.tokens import derive_key
from models.messages import DeliveryResult, OutboundMessage
from models.vocab import ChannelName

log = logging.getLogger(__name__)


def _secret(value: Any) -> str | None:
    """A `SecretStr`, a plain string or None → the string, or None when empty."""
    if value is None:
        return None
    raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return str(raw) or None


@dataclass(frozen=True)
class WebchatConfig:
    """Deployment settings; `from_settings` reads the `CARELINE_WEBCHAT_*` fields."""

    # Signs visitor tokens. Unset: a key derived from WEBHOOK_SECRET; neither: a random key
    # per process (tokens then die with the process: fine for a laptop demo only).
    secret: str | None = None
    fallback_secret: str | None = None
    token_ttl_s: int = 30 * 86400
    # Page origins allowed to embed the widget ("https://clinic.example"); "*" allows any.
    # Empty: only pages served by Careline itself (the demo).
    allowed_origins: tuple[str, ...] = ()
    max_frame_bytes: int = 16 * 1024
    max_text_chars: int = 4000
    messages_per_minute: int = 20
    typing_per_minute: int = 30
    max_sockets_per_visitor: int = 5
    # How often an idle socket re-reads its feed: a reply delivered by another instance's
    # outbox worker (which cannot wake our sockets) shows up at most this late.
    poll_s: float = 2.0
    # Longest a frame (or the close) may wait for the visitor to read: a client that stops
    # reading gets its connection aborted, and its socket slot back, after this.
    send_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Any) -> WebchatConfig:
        """Read the web chat fields when the settings have them, defaults otherwise."""
        d = cls()
        origins: Any = getattr(settings, "webchat_allowed_origins", None) or ()
        if isinstance(origins, str):
            origins = origins.replace(",", " ").split()
        return cls(
            secret=_secret(getattr(settings, "webchat_secret", None)),
            fallback_secret=_secret(getattr(settings, "webhook_secret", None)),
            token_ttl_s=int(getattr(settings, "webchat_token_ttl_s", d.token_ttl_s)),
            allowed_origins=tuple(str(o).rstrip("/") for o in origins if o),
            max_frame_bytes=int(getattr(settings, "webchat_max_frame_bytes", d.max_frame_bytes)),
            max_text_chars=int(getattr(settings, "webchat_max_text_chars", d.max_text_chars)),
            messages_per_minute=int(
                getattr(settings, "webchat_messages_per_minute", d.messages_per_minute)
            ),
            max_sockets_per_visitor=int(
                getattr(settings, "webchat_max_sockets", d.max_sockets_per_visitor)
            ),
            poll_s=float(getattr(settings, "webchat_poll_s", d.poll_s)),
            send_timeout_s=float(getattr(settings, "webchat_send_timeout_s", d.send_timeout_s)),
        )


class WebchatChannel:
    """Replies are stored by the router before `send` is called; the visitor's sockets read
    them from the database. `send` only wakes this instance's sockets, and answers
    "available" whether or not the visitor is online: an offline visitor gets the reply
    replayed on the next connection."""

    name: ClassVar[ChannelName] = "webchat"

    def __init__(self, config: WebchatConfig | None = None, hub: Hub | None = None) -> None:
        self.config = config or WebchatConfig()
        self.hub = hub or Hub()
        if self.config.secret:
            self.key = derive_key(self.config.secret)
        elif self.config.fallback_secret:
            self.key = derive_key(self.config.fallback_secret)
        else:
            log.warning(
                "CARELINE_WEBCHAT_SECRET is not set: web chat tokens are signed with a random "
                "key and stop working when this process restarts"
            )
            self.key = secrets.token_bytes(32)

    async def send(self, msg: OutboundMessage) -> DeliveryResult:
        self.hub.wake(msg.recipient)
        return DeliveryResult(status="available")

    async def aclose(self) -> None:
        return None
