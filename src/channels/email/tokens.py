"""The conversation token: `c<conversation id>`, carried in our Reply-To plus-address
(`support+c42@clinic.example`) and in the subject (`[#c42]`), so a reply threads even when
the customer's client drops In-Reply-To/References. A token only ever selects a conversation
of the sender's own contact (checked by the caller), so guessing one gains nothing."""

from __future__ import annotations

import hashlib
import hmac
import re
from email.utils import formataddr, getaddresses

SUBJECT_TOKEN = re.compile(r"\[#c(\d{1,18})\]")
_PLUS_TOKEN = re.compile(r"^[^@+]+\+c(\d{1,18})@", re.IGNORECASE)
_PREFIX = re.compile(
    r"^\s*((re|fw|fwd|aw|wg|sv|vs|rv|res|tr|antw|ответ|отв|пересл)\s*(\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)


def token(conversation_id: int) -> str:
    return f"c{conversation_id}"


def address_of(header_value: str) -> tuple[str, str]:
    """(display name, address) of a From setting such as `Clinic <help@clinic.example>`."""
    pairs = getaddresses([header_value])
    name, addr = pairs[0] if pairs else ("", header_value)
    return name, addr.strip()


def plus_address(from_header: str, conversation_id: int) -> str:
    """`Name <local+c42@domain>` for the Reply-To header."""
    name, addr = address_of(from_header)
    local, _, domain = addr.rpartition("@")
    local = local.split("+", 1)[0]
    return formataddr((name, f"{local}+{token(conversation_id)}@{domain}"))


def conversation_ids(recipients: tuple[str, ...], subject: str | None) -> list[int]:
    """Conversation ids named by plus-addresses first (set by us), then by the subject."""
    found: list[int] = []
    for addr in recipients:
        m = _PLUS_TOKEN.match(addr)
        if m:
            found.append(int(m[1]))
    if subject:
        found.extend(int(m) for m in SUBJECT_TOKEN.findall(subject))
    return list(dict.fromkeys(found))


def reply_subject(subject: str | None, conversation_id: int, fallback: str = "Your message") -> str:
    """`Re: <original> [#c42]`: one `Re:` however many prefixes (Re/Fwd/AW/Ответ, `Re[2]:`)
    the thread accumulated, and exactly one token."""
    base = SUBJECT_TOKEN.sub("", subject or "")
    base = " ".join(_PREFIX.sub("", base).split()) or fallback
    return f"Re: {base} [#{token(conversation_id)}]"


# VERP: our replies go out with the envelope sender (Return-Path) `local+b<id>-<tag>@domain`,
# the tag an HMAC of the outbound message's id. A bounce is believed only when it arrives at
# such an address with a valid tag: a Message-ID is no secret (a forged DSN can name ours),
# but the return path of one mail is known only to the servers that carried it.
_BOUNCE = re.compile(r"^[^@+]+\+b(\d{1,18})-([0-9a-f]{20})@", re.IGNORECASE)


def _bounce_tag(key: bytes, message_id: int) -> str:
    return hmac.new(key, f"bounce:{message_id}".encode(), hashlib.sha256).hexdigest()[:20]


def bounce_address(from_addr: str, message_id: int, key: bytes) -> str:
    """The envelope sender for our outbound message `message_id`."""
    local, _, domain = from_addr.rpartition("@")
    local = local.split("+", 1)[0]
    return f"{local}+b{message_id}-{_bounce_tag(key, message_id)}@{domain}"


def bounced_message_id(recipients: tuple[str, ...], key: bytes | None) -> int | None:
    """Our outbound message id from a valid signed return path among `recipients`."""
    if not key:
        return None
    for addr in recipients:
        m = _BOUNCE.match(addr)
        if m and hmac.compare_digest(m[2].lower(), _bounce_tag(key, int(m[1]))):
            return int(m[1])
    return None
