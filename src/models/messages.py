"""Channel-neutral value objects: what every adapter produces and consumes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from models.vocab import ChannelName

# Which identity kind a channel's sender id is: calls are known by their phone number.
IDENTITY_KIND: dict[str, str] = {
    "telegram": "telegram",
    "webchat": "webchat",
    "email": "email",
    "calls": "phone",
    "app": "app",
}


# Inbound values are normalised here, once for every channel, so plausible bad input is
# stored or refused with a 4xx, never a database error (a 500 that providers retry forever):
# PostgreSQL refuses NUL in text, columns have sizes, and a year-1 date overflows.
MAX_JSON_DEPTH = 32
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class InboundValueError(ValueError):
    """An inbound value no channel could store (an impossible date, JSON nested too deep)."""


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of decoded JSON, counted up to `limit + 1` (iteratively: no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((v, depth + 1) for v in children)
    return deepest


def raw_json_too_deep(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when undecoded JSON nests deeper than `limit`: checked before `json.loads`, which
    would recurse (RecursionError, a 500) on a body of a few kilobytes of brackets."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    depth, in_str, esc = 0, False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def clean(value: Any, max_len: int | None = None) -> Any:
    """NULs out of every string (recursively), and a string cut to `max_len`."""
    if isinstance(value, str):
        value = value.replace("\x00", "")
        return value[:max_len] if max_len is not None else value
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(clean(v) for v in value)
    return value


def check_date(value: datetime | None) -> datetime | None:
    if value is not None and not EARLIEST <= value <= LATEST:
        raise InboundValueError("date out of range")
    return value


class Sender(BaseModel):
    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        limits = {"external_id": 320, "name": 200, "phone": 320, "email": 320}
        return {k: clean(v, limits.get(k)) for k, v in data.items()}

    external_id: str = Field(min_length=1, max_length=320)
    name: str | None = None
    # Cross-channel keys. Only verified ones merge contacts.
    phone: str | None = None  # E.164
    phone_verified: bool = False
    email: str | None = None  # lower-cased
    email_verified: bool = False


class AttachmentRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        limits = {"kind": 16, "url": 2000, "mime": 200, "name": 300}
        return {k: clean(v, limits.get(k)) for k, v in data.items()}

    kind: str = "file"
    url: str
    mime: str | None = None
    size: int | None = None
    name: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


CallStatus = Literal["answered", "missed", "busy", "failed", "voicemail"]
CallDirection = Literal["inbound", "outbound"]


class CallLog(BaseModel):
    """The typed part of a call log: what the router reads of a call (callback requests,
    routing on call status, the timeline). Stored in the message's `channel_meta` under the
    same keys as before (`to_meta`), so the schema and the API stay as they were."""

    model_config = ConfigDict(frozen=True)

    status: CallStatus
    # Optional only so that a stored log missing them (older rows, hand-written ones) still
    # reads; the calls channel always sets all three.
    direction: CallDirection | None = None
    provider: str | None = None
    call_id: str | None = None
    from_: str | None = None
    to: str | None = None
    customer_phone: str | None = None  # E.164, when the customer can be rung back
    duration_s: int | None = None
    agent: str | None = None
    started_at: str | None = None  # ISO 8601, as the provider reported it
    transcript: str | None = None  # an answered call's transcript: kept, never routed

    # The stored keys, in the order the timeline shows them.
    _KEYS: ClassVar[dict[str, str]] = {"status": "call_status", "from_": "from"}

    def to_meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "transcript" and value is None:
                continue
            out[self._KEYS.get(name, name)] = value
        return out

    @classmethod
    def from_meta(cls, meta: dict[str, Any] | None) -> CallLog | None:
        """The call log stored in a message's `channel_meta`, or None if it holds none."""
        meta = meta or {}
        if meta.get("call_status") not in get_args(CallStatus):
            return None
        if meta.get("direction") not in (*get_args(CallDirection), None):
            return None
        fields = {name: meta.get(cls._KEYS.get(name, name)) for name in cls.model_fields}
        try:
            return cls.model_validate(
                {
                    k: (str(v) if k in ("provider", "call_id") and v is not None else v)
                    for k, v in fields.items()
                }
            )
        except ValueError:
            return None

    def details(self) -> dict[str, object]:
        """The timeline's view (the message read's `call`): the set fields only."""
        shown: tuple[str, ...] = ("status", "direction", "duration_s", "agent", "provider")
        shown += ("call_id", "started_at", "transcript", "from_", "to")
        return {
            self._KEYS.get(k, k): getattr(self, k) for k in shown if getattr(self, k) is not None
        }


class InboundMessage(BaseModel):
    """One customer message (or call log), normalised from any channel."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if json_depth(data.get("channel_meta")) > MAX_JSON_DEPTH:
            raise InboundValueError("channel metadata nested too deep")
        limits = {"external_id": 500, "subject": 300}
        keep = ("sender", "attachments", "received_at", "sent_at")
        return {k: v if k in keep else clean(v, limits.get(k)) for k, v in data.items()}

    @field_validator("received_at")
    @classmethod
    def _possible(cls, value: datetime) -> datetime:
        check_date(value)
        return value

    @field_validator("sent_at")
    @classmethod
    def _claimed(cls, value: datetime | None) -> datetime | None:
        # The sender's own claim (a mail's Date header): an impossible one is dropped rather
        # than losing the message; APIs that take it refuse it instead (`check_date`).
        return value if value is None or EARLIEST <= value <= LATEST else None

    channel: ChannelName
    external_id: str = Field(min_length=1, max_length=500)
    sender: Sender
    text: str = ""
    kind: Literal["text", "call"] = "text"
    # "out": an outbound call an agent (or the PBX) logged; everything else is the customer's.
    direction: Literal["in", "out"] = "in"
    call: CallLog | None = None  # set on call logs (kind "call"), by the calls channel
    attachments: tuple[AttachmentRef, ...] = ()
    received_at: AwareDatetime
    sent_at: AwareDatetime | None = None
    # External ids of earlier messages this one answers (email In-Reply-To/References):
    # threading looks them up before falling back to the contact's open conversation.
    thread_refs: tuple[str, ...] = ()
    # True: thread by `thread_refs` or open a new conversation, never join the sender's open
    # one (mail whose From: is not authenticated: anyone can write that address).
    thread_refs_only: bool = False
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
