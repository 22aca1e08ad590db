"""What both call-log formats share: statuses, the caller's identity, recordings."""

from __future__ import annotations

import re
from collections.abc import Callable

from models.messages import AttachmentRef, CallStatus, Sender
from models.messages import CallDirection as Direction

__all__ = ["CallStatus", "Direction", "PhoneNormaliser", "caller", "recording", "to_int"]
# Turns a raw number into E.164, or None when it does not parse (`channels.phones.e164` with the
# default region bound): passed in so the parsers stay pure and free of settings.
PhoneNormaliser = Callable[[str], str | None]

# Values carriers and Twilio put in From when the caller hides their number: Twilio documents
# "+266696687" (keypad ANONYMOUS), "+7378742833" (RESTRICTED), "+2562533" (BLOCKED) and
# "+86282452253" (UNAVAILABLE); PBXs say "anonymous", "unknown", "private"...
ANONYMOUS = frozenset(
    {
        "",
        "anonymous",
        "unknown",
        "unavailable",
        "restricted",
        "private",
        "blocked",
        "withheld",
        "+266696687",
        "266696687",
        "+7378742833",
        "+2562533",
        "+86282452253",
    }
)
_NOT_DIGITS = re.compile(r"\D")


def caller(
    raw: str | None, e164: PhoneNormaliser, *, call_key: str, name: str | None = None
) -> tuple[Sender, str | None]:
    """The customer as a `Sender` of the calls channel (identity kind "phone"), and their
    E.164 number when it can be rung back.

    A withheld number must not become one shared "anonymous" contact that piles every hidden
    caller into one conversation, so it gets a per-call identity (`call_key`) that merges with
    nothing. A number that does not parse (short codes, SIP/client URIs) keeps a stable
    "raw:" identity: repeated calls still collate, and it can never equal an E.164 value.
    """
    value = (raw or "").strip()
    if value.lower() in ANONYMOUS:
        return Sender(external_id=f"anonymous:{call_key}"[:320], name=name), None
    phone = e164(value)
    if phone is not None:
        # Caller ID is the identity of this channel (as a chat id is Telegram's), so it merges
        # with a phone verified elsewhere. It can be spoofed; see DESIGN notes in the report.
        return Sender(external_id=phone, name=name, phone=phone, phone_verified=True), phone
    fallback = _NOT_DIGITS.sub("", value) or value.lower()
    return Sender(external_id=f"raw:{fallback}"[:320], name=name), None


def recording(
    url: str | None, *, sid: str | None = None, duration_s: int | None = None
) -> tuple[AttachmentRef, ...]:
    """A recording is attached by reference only: the provider keeps the audio."""
    if not url:
        return ()
    meta: dict[str, object] = {}
    if sid:
        meta["sid"] = sid
    if duration_s is not None:
        meta["duration_s"] = duration_s
    return (AttachmentRef(kind="recording", url=url, meta=meta),)


def to_int(raw: str | None) -> int | None:
    """A non-negative count from a form field; junk is dropped rather than rejected."""
    if not raw:
        return None
    try:
        return max(0, int(raw))
    except ValueError:
        return None
