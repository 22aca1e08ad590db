"""Channel-neutral value objects: what every adapter produces and consumes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ChannelName = Literal["telegram", "webchat", "email", "calls", "app"]
CHANNELS: tuple[ChannelName, ...] = ("telegram", "webchat", "email", "calls", "app")

# Which identity kind a channel's sender id is: calls are known by their phone number.
IDENTITY_KIND: dict[str, str] = {
    "telegram": "telegram",
    "webchat": "webchat",
    "email": "email",
    "calls": "phone",
    "app": "app",
}


class Sender(BaseModel):
    model_config = ConfigDict(frozen=True)

    external_id: str = Field(min_length=1, max_length=320)
    name: str | None = None
    # Cross-channel keys. Only verified ones merge contacts.
    phone: str | None = None  # E.164
    phone_verified: bool = False
    email: str | None = None  # lower-cased
    email_verified: bool = False


class AttachmentRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str = "file"
    url: str
    mime: str | None = None
    size: int | None = None
    name: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class InboundMessage(BaseModel):
    """One customer message (or call log), normalised from any channel."""

    model_config = ConfigDict(frozen=True)

    channel: ChannelName
    external_id: str = Field(min_length=1, max_length=500)
    sender: Sender
    text: str = ""
    kind: Literal["text", "call"] = "text"
    attachments: tuple[AttachmentRef, ...] = ()
    received_at: AwareDatetime
    sent_at: AwareDatetime | None = None
    # External ids of earlier messages this one answers (email In-Reply-To/References):
    # threading looks them up before falling back to the contact's open conversation.
    thread_refs: tuple[str, ...] = ()
    subject: str | None = None
    channel_meta: dict[str, Any] = Field(default_factory=dict)


class OutboundMessage(BaseModel):
    """A reply to deliver; built by the outbox worker from a stored message."""

    model_config = ConfigDict(frozen=True)

    channel: ChannelName
    message_id: int
    conversation_id: int
    recipient: str  # the identity value on that channel (chat id, address, app user id)
    text: str
    # "page": the on-call supervisor paged about an unanswered crisis (not to the customer).
    kind: Literal["reply", "ack", "crisis_ack", "emergency_ack", "csat", "page"] = "reply"
    attachments: tuple[AttachmentRef, ...] = ()
    # Our own external id for this message, when the channel needs one (email Message-ID).
    external_id: str | None = None
    reply_to_external_id: str | None = None
    references: tuple[str, ...] = ()
    subject: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class DeliveryResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    # "sent": the channel took it; "available": stored for the client to pull (app, webchat).
    status: Literal["sent", "available"] = "sent"
    external_id: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


def received(at: datetime) -> datetime:
    """Guard used by adapters: a received timestamp must carry a zone."""
    if at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return at
