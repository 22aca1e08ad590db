"""Raw RFC 5322 bytes → `ParsedEmail`, with the standard library's `email` package
(`policy.default`). Pure and total: odd mail yields defects and fallbacks, never an
exception; only mail with no usable sender is rejected (`EmailRejected`, a 422)."""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Literal

from email_validator import EmailNotValidError, validate_email

from channels.email import text as textmod
from router.errors import InvalidInput

AutoKind = Literal["bounce", "auto_reply", "loop"]

MAX_DEPTH = 5  # nested multiparts / forwarded messages deeper than this are not unpacked
MAX_PARTS = 200
MAX_ID_LEN = 400
DERIVED_DOMAIN = "derived.careline.invalid"
LOOP_HEADER = "X-Careline-Loop"
MAX_HOPS = 40  # Received headers; real mail has < 20, a loop keeps adding them


class EmailRejected(InvalidInput):
    title = "Unusable email"


@dataclass(frozen=True)
class Part:
    """A non-text part (attachment or inline image); the bytes go to the file store."""

    name: str
    mime: str
    data: bytes
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True)
class Bounce:
    original_ids: tuple[str, ...] = ()
    status: str | None = None  # DSN status, e.g. "5.1.1"
    action: str | None = None  # failed | delayed | delivered | relayed | expanded


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str  # angle brackets stripped
    message_id_derived: bool
    from_addr: str  # lower-cased, validated
    from_name: str | None
    subject: str | None
    date: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    recipients: tuple[str, ...]  # To, Cc, Delivered-To, X-Original-To (lower-cased)
    text_full: str
    text: str  # without quoted replies and signature
    html_only: bool
    attachments: tuple[Part, ...]
    auto: AutoKind | None = None
    auto_reason: str | None = None
    bounce: Bounce | None = None
    headers: dict[str, str] = field(default_factory=dict)
    defects: int = 0
    # What the mail says (sender, date, subject, text, attachments): equal for a redelivery,
    # different for another mail reusing the Message-ID.
    content_hash: str = ""
    # Every Authentication-Results value, topmost first (read by `channels.email.auth`).
    auth_results: tuple[str, ...] = ()

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """In-Reply-To first, then References newest first; no duplicates."""
        seen: dict[str, None] = {}
        for ref in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(ref, None)
        return tuple(seen)


# --- strings ---------------------------------------------------------------------------------


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def clean(value: str, limit: int | None = None) -> str:
    """Text safe for JSON and both databases: no NULs, no lone surrogates (8-bit header bytes
    arrive as surrogate escapes), no control characters but tabs and newlines."""
    if _has_surrogates(value):
        raw = value.encode("utf-8", "surrogateescape")
        value = _decode_bytes(raw, None)
    value = value.encode("utf-8", "replace").decode("utf-8")
    value = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", value)
    return value[:limit] if limit is not None else value


_CHARSET_ALIASES = {
    "unknown-8bit": None,
    "x-unknown": None,
    "unknown": None,
    "default": None,
    "cp-1251": "cp1251",
    "win-1251": "cp1251",
    "x-cp1251": "cp1251",
    "windows-1251": "cp1251",
    "ks_c_5601-1987": "cp949",
    "x-user-defined": "cp1252",
    "iso-8859-8-i": "iso-8859-8",
}


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip('"').lower()
    if name in _CHARSET_ALIASES:
        return _CHARSET_ALIASES[name]
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Declared charset first; undeclared or unknown: UTF-8 if it is valid, else Windows-1252
    (the de facto meaning of "Latin-1" in mail), which decodes any byte."""
    codec = _codec(charset)
    if codec is not None:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            return data.decode(codec, "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _header(msg: Message, name: str, hint: str | None = None) -> str | None:
    """A header's decoded value (RFC 2047 words decoded), or None; never raises.

    Raw 8-bit bytes in a header (no RFC 2047) are decoded with `hint`, the message's own
    body charset: that is what the sender's client used for both."""
    raw8 = next((v for v in _raw_headers(msg, name) if _has_surrogates(v)), None)
    if raw8 is not None:
        data = raw8.encode("ascii", "surrogateescape")
        return clean(" ".join(_decode_bytes(data, hint).split()))
    try:
        value = msg.get(name)
    except Exception:  # policy.default's header parser has raised on pathological input
        value = None
        for key, raw in msg.raw_items():
            if key.lower() == name.lower():
                value = _decode_2047(str(raw))
                break
    if value is None:
        return None
    try:
        text = str(value)
    except Exception:
        return None
    return clean(" ".join(text.split()))


def _decode_2047(raw: str) -> str:
    try:
        return str(make_header(decode_header(raw)))
    except Exception:
        return raw


def _raw_headers(msg: Message, name: str) -> list[str]:
    try:
        return [str(v) for k, v in msg.raw_items() if k.lower() == name.lower()]
    except Exception:
        return []


_MSGID = re.compile(r"<([^<>\s]{1,500})>")


def normalise_id(raw: str) -> str | None:
    """A Message-ID as we store it: angle brackets and whitespace stripped. Over-long ids
    are replaced by a hash so they fit the column and still compare equal everywhere."""
    value = "".join(raw.split()).strip("<>")
    if not value:
        return None
    value = clean(value)
    if len(value) > MAX_ID_LEN:
        value = "h-" + hashlib.sha256(value.encode()).hexdigest() + "@" + DERIVED_DOMAIN
    return value


def parse_ids(raw: str | None) -> tuple[str, ...]:
    """All message ids in a References / In-Reply-To value; bare tokens when unbracketed."""
    if not raw:
        return ()
    found = _MSGID.findall(raw)
    if not found:
        found = [tok for tok in raw.split() if "@" in tok]
    ids = (normalise_id(f) for f in found)
    return tuple(dict.fromkeys(i for i in ids if i))[:50]


def valid_address(raw: str | None) -> str | None:
    """Lower-cased address if it is a syntactically valid one (no DNS lookups)."""
    if not raw:
        return None
    candidate = raw.strip().strip("<>").strip()
    if not candidate or len(candidate) > 320:
        return None
    try:
        # globally_deliverable=False: a clinic's intranet mail (`nurse@intranet`) is mail too.
        info = validate_email(
            candidate, check_deliverability=False, allow_smtputf8=True, globally_deliverable=False
        )
    except (EmailNotValidError, ValueError, UnicodeError):
        return None
    return info.normalized.lower()


def _addresses(msg: Message, *names: str, hint: str | None = None) -> list[tuple[str, str]]:
    values: list[str] = []
    for name in names:
        for v in _raw_headers(msg, name):
            if _has_surrogates(v):
                v = _decode_bytes(v.encode("ascii", "surrogateescape"), hint)
            values.append(_decode_2047(v))
    try:
        return [(clean(n), a) for n, a in getaddresses(values)]
    except Exception:
        return []


# --- body ------------------------------------------------------------------------------------


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)  # undoes base64 / quoted-printable, leniently
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _part_text(part: Message) -> str:
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    text = textmod.normalise_newlines(_decode_bytes(_payload(part), charset))
    if part.get_content_type() == "text/html":
        return textmod.html_to_text(text)
    return text


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        try:
            name = part.get_param("name")  # type: ignore[assignment]
        except Exception:
            name = None
        if isinstance(name, tuple):  # RFC 2231 triple
            name = _decode_bytes(name[2].encode("latin-1", "replace"), name[0])
    if not isinstance(name, str) or not name.strip():
        return None
    return safe_filename(_decode_2047(name))


def safe_filename(name: str) -> str:
    """A display name only (never a path on disk): no directories, no control characters."""
    base = re.split(r"[\\/]", clean(name))[-1].strip().strip(".")
    return base[:200] or "attachment"


_EXT = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "message/rfc822": ".eml",
}


class _Walker:
    """Collects text blocks and parts from a MIME tree (and forwarded messages in it)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.parts: list[Part] = []
        self.html_only = False
        self.bounce_fields: dict[str, str] = {}
        self.bounce_ids: list[str] = []
        self.count = 0
        self.truncated = False

    def walk(self, part: Message, depth: int) -> None:
        self.count += 1
        if self.count > MAX_PARTS or depth > MAX_DEPTH:
            self.truncated = True
            return
        ctype = part.get_content_type()
        # message/* first: is_multipart() is true for them too (their payload is a list).
        if ctype == "message/rfc822":
            self._forwarded(part, depth)
            return
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            self._delivery_status(part)
            return
        if part.is_multipart():
            children = [c for c in (part.get_payload() or []) if isinstance(c, Message)]
            if ctype == "multipart/alternative" and children:
                self.walk(self._best_alternative(children), depth + 1)
            elif ctype == "multipart/report":
                self._report(children, depth)
            else:
                for child in children:
                    self.walk(child, depth + 1)
            return
        if ctype in ("text/rfc822-headers", "text/global-headers"):
            self._original_headers(_payload(part))
            return
        disposition = part.get_content_disposition()
        name = _filename(part)
        if ctype.startswith("multipart/"):
            # A multipart whose boundary never occurs: the parser kept it whole (a defect).
            # Its text is still what the sender wrote; showing it beats dropping it.
            self.texts.append(_decode_bytes(_payload(part), None))
            return
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not name:
            if ctype == "text/html" and not self.texts:
                self.html_only = True
            self.texts.append(_part_text(part))
            return
        data = _payload(part)
        if not data:
            return
        cid = _header(part, "Content-ID")
        self.parts.append(
            Part(
                name=name or f"part-{len(self.parts) + 1}{_EXT.get(ctype, '.bin')}",
                mime=ctype,
                data=data,
                inline=disposition == "inline" or (disposition is None and cid is not None),
                content_id=normalise_id(cid) if cid else None,
            )
        )

    @staticmethod
    def _best_alternative(children: list[Message]) -> Message:
        # Prefer plain text, unless it is empty (some senders send a blank text part).
        for child in children:
            if child.get_content_type() == "text/plain" and _part_text(child).strip():
                return child
        for child in reversed(children):  # richest last (RFC 2046)
            if child.get_content_type() == "text/html" or child.is_multipart():
                return child
        return children[-1]

    def _report(self, children: list[Message], depth: int) -> None:
        # A DSN/MDN: the human-readable part is the text; the rest describes the original.
        for i, child in enumerate(children):
            ctype = child.get_content_type()
            if ctype == "message/rfc822":
                inner = _inner(child)
                if inner is not None:
                    self.bounce_ids.extend(parse_ids(_header(inner, "Message-ID")))
            elif i == 0 or ctype.startswith("message/") or ctype.startswith("text/rfc822"):
                self.walk(child, depth + 1)

    def _delivery_status(self, part: Message) -> None:
        blocks = part.get_payload()
        if isinstance(blocks, list):
            for block in blocks:
                if isinstance(block, Message):
                    for key in ("Action", "Status", "Final-Recipient"):
                        value = _header(block, key)
                        if value and key not in self.bounce_fields:
                            self.bounce_fields[key] = value

    def _original_headers(self, data: bytes) -> None:
        try:
            headers = BytesParser(policy=policy.default).parsebytes(data, headersonly=True)
        except Exception:
            return
        self.bounce_ids.extend(parse_ids(_header(headers, "Message-ID")))

    def _forwarded(self, part: Message, depth: int) -> None:
        inner = _inner(part)
        if inner is None:
            return
        sub = _Walker()
        sub.count = self.count
        sub.walk(inner, depth + 1)
        self.count = sub.count
        intro = ["---------- Forwarded message ----------"]
        for key in ("From", "Date", "Subject"):
            value = _header(inner, key)
            if value:
                intro.append(f"{key}: {value}")
        body = textmod.collapse_blank_lines("\n\n".join(sub.texts))
        self.texts.append("\n".join(intro) + "\n\n" + body)
        self.parts.extend(sub.parts)


def _inner(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str) and payload.strip():
        try:
            return BytesParser(policy=policy.default).parsebytes(
                payload.encode("utf-8", "surrogateescape")
            )
        except Exception:
            return None
    return None


# --- automatic mail ----------------------------------------------------------------------------

_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matic)?[ -]?reply|autoreply|out of (the )?office|"
    r"respuesta autom[aá]tica|fuera de la oficina|автоматический ответ|автоответ|"
    r"réponse automatique|abwesenheitsnotiz)\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliverable|undelivered mail|delivery status notification|"
    r"mail delivery (failed|subsystem)|returned mail|failure notice|delivery failure|"
    r"non remis|no se puede entregar|не доставлено|недоставленное)",
    re.IGNORECASE,
)
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")


def classify(
    msg: Message, *, from_addr: str, subject: str | None, own: frozenset[str]
) -> tuple[AutoKind | None, str | None]:
    """Is this mail written by a machine? Checked in order: our own mail coming back (loop),
    a delivery failure (bounce), then auto-responders and bulk mail (RFC 3834 signals)."""
    if _raw_headers(msg, LOOP_HEADER):
        return "loop", f"carries our {LOOP_HEADER} header"
    if from_addr in own:
        return "loop", "sent from our own address"
    if len(_raw_headers(msg, "Received")) > MAX_HOPS:
        return "loop", "too many Received hops"

    ctype = msg.get_content_type()
    report = (msg.get_param("report-type") or "") if ctype == "multipart/report" else ""
    local = from_addr.split("@", 1)[0]
    if str(report).lower() == "delivery-status":
        return "bounce", "delivery status notification"
    if _raw_headers(msg, "X-Failed-Recipients"):
        return "bounce", "X-Failed-Recipients"
    if local in _DAEMONS:
        return "bounce", "sent by a mailer daemon"
    return_path = _header(msg, "Return-Path")
    null_sender = return_path is not None and return_path.strip() == "<>"
    if null_sender and subject and _BOUNCE_SUBJECT.match(subject):
        return "bounce", "null sender and a delivery-failure subject"
    if str(report).lower() == "disposition-notification":
        return "auto_reply", "read receipt"

    auto_submitted = (_header(msg, "Auto-Submitted") or "").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return "auto_reply", f"Auto-Submitted: {auto_submitted[:40]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-Autoresponder"):
        if _raw_headers(msg, name):
            return "auto_reply", name
    precedence = (_header(msg, "Precedence") or _header(msg, "X-Precedence") or "").lower()
    # Not "list": a support address that is a Google Group / list alias gets it on every mail.
    if precedence in ("bulk", "junk", "auto_reply"):
        return "auto_reply", f"Precedence: {precedence}"
    if subject and _AUTO_SUBJECT.match(subject):
        return "auto_reply", "auto-reply subject"
    return None, None


# --- entry point -------------------------------------------------------------------------------

HEADERS_KEPT = ("Date", "Auto-Submitted", "Precedence", "Content-Language", "X-Mailer")


def parse_email(raw: bytes, *, own_addresses: frozenset[str] = frozenset()) -> ParsedEmail:
    """Parse one raw message. Raises `EmailRejected` only when there is nobody to answer."""
    if not raw.strip():
        raise EmailRejected("the body is empty")
    msg = _parse_bytes(raw)
    found = _sender(msg)
    if found is None:
        # A junk line before the headers (a client's or gateway's banner) makes the parser
        # read everything as body: skip a few leading lines that are not headers and retry.
        trimmed = _skip_junk_lines(raw)
        if trimmed is not None:
            retry = _parse_bytes(trimmed)
            if (found := _sender(retry)) is not None:
                msg = retry
    if not any(True for _ in msg.raw_items()):
        raise EmailRejected("the message has no headers")
    if found is None:
        raise EmailRejected("the message has no valid sender address (From)")
    from_addr, from_name = found
    hint = _body_charset(msg)

    subject = _header(msg, "Subject", hint)
    walker = _Walker()
    try:
        walker.walk(msg, 0)
    except Exception:  # a part the library cannot represent: keep what was collected
        walker.truncated = True
    text_full = textmod.collapse_blank_lines(
        "\n\n".join(t for t in (clean(x) for x in walker.texts) if t.strip())
    )[: textmod.MAX_TEXT_CHARS]
    text = textmod.strip_reply(text_full) if text_full else ""

    date = _date(_header(msg, "Date"))
    mid_header = _header(msg, "Message-ID")
    message_id = normalise_id(mid_header) if mid_header else None
    derived = message_id is None
    if message_id is None:
        message_id = derive_message_id(from_addr, date, subject, text_full, walker.parts)

    recipients = tuple(
        dict.fromkeys(
            a
            for a in (
                valid_address(addr)
                for _, addr in _addresses(msg, "To", "Cc", "Delivered-To", "X-Original-To")
            )
            if a
        )
    )
    try:
        auto, reason = classify(msg, from_addr=from_addr, subject=subject, own=own_addresses)
    except Exception:  # a header the library cannot parse: treat the mail as human
        auto, reason = None, None
    bounce = None
    if auto == "bounce":
        ids = walker.bounce_ids or [
            i for m in re.finditer(r"(?im)^message-id:\s*(.+)$", text_full) for i in parse_ids(m[1])
        ]
        bounce = Bounce(
            original_ids=tuple(dict.fromkeys(ids)),
            status=walker.bounce_fields.get("Status"),
            action=(walker.bounce_fields.get("Action") or "").lower() or None,
        )
    headers = {k: v[:200] for k in HEADERS_KEPT if (v := _header(msg, k))}
    return ParsedEmail(
        message_id=message_id,
        message_id_derived=derived,
        from_addr=from_addr,
        from_name=clean(from_name, 200) if from_name else None,
        subject=subject[:998] if subject else None,
        date=date,
        in_reply_to=parse_ids(_header(msg, "In-Reply-To")),
        references=parse_ids(_header(msg, "References")),
        recipients=recipients,
        text_full=text_full,
        text=text,
        html_only=walker.html_only,
        attachments=tuple(walker.parts),
        auto=auto,
        auto_reason=reason,
        bounce=bounce,
        headers=headers,
        defects=len(msg.defects) + (1 if walker.truncated else 0),
        content_hash=content_digest(from_addr, date, subject, text_full, walker.parts),
        auth_results=tuple(
            clean(" ".join(v.split()), 2000) for v in _raw_headers(msg, "Authentication-Results")
        )[:20],
    )


def _parse_bytes(raw: bytes) -> EmailMessage:
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; guard against its own bugs
        raise EmailRejected("the message could not be parsed as RFC 5322") from exc
    assert isinstance(msg, EmailMessage)
    return msg


_HEADER_LINE = re.compile(rb"^[!-9;-~]{1,76}:")
_ADDR_SPEC = re.compile(r"[^\s<>\"(),;:@\[\]]+@[^\s<>\"(),;:@\[\]]+")
MAX_JUNK_LINES = 3


def _skip_junk_lines(raw: bytes) -> bytes | None:
    lines = raw.split(b"\n", MAX_JUNK_LINES + 1)
    for i in range(1, min(MAX_JUNK_LINES, len(lines) - 1) + 1):
        if _HEADER_LINE.match(lines[i]):
            return b"\n".join(lines[i:])
    return None


def _sender(msg: Message) -> tuple[str, str | None] | None:
    """(address, display name) from From, else Sender, else Reply-To. Leniently: a client
    shows `From: Test test@example.com` (no angle brackets) as a sender, so do we."""
    hint = _body_charset(msg)
    for header in ("From", "Sender", "Reply-To"):
        pairs = _addresses(msg, header, hint=hint)
        for name, addr in pairs:
            valid = valid_address(addr)
            if valid:
                return valid, name.strip() or None
        for name, addr in pairs:
            text = " ".join(p for p in (name, addr) if p)
            for m in _ADDR_SPEC.finditer(text):
                valid = valid_address(m[0])
                if valid:
                    rest = " ".join((text[: m.start()] + text[m.end() :]).split())
                    return valid, clean(rest.strip(" <>\"'")) or None
    return None


def _body_charset(msg: Message) -> str | None:
    """The first declared charset in the message: the best guess for raw 8-bit headers."""
    try:
        for part in msg.walk():
            charset = part.get_content_charset()
            if charset and _codec(charset) not in (None, "ascii"):
                return charset
    except Exception:
        return None
    return None


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt.tzinfo is None:  # "-0000" means "zone unknown"; treat it as UTC
        dt = dt.replace(tzinfo=UTC)
    if not 1990 <= dt.year <= 2200:
        return None
    return dt


def derive_message_id(
    from_addr: str,
    date: datetime | None,
    subject: str | None,
    text: str,
    parts: tuple[Part, ...] | list[Part],
) -> str:
    """A stable id for mail without a Message-ID: the same message delivered twice (even
    with different Received headers) derives the same id, so de-dup still works."""
    return f"{content_digest(from_addr, date, subject, text, parts)[:40]}@{DERIVED_DOMAIN}"


def content_digest(
    from_addr: str,
    date: datetime | None,
    subject: str | None,
    text: str,
    parts: tuple[Part, ...] | list[Part],
) -> str:
    h = hashlib.sha256()
    for piece in (from_addr, date.isoformat() if date else "", subject or "", text):
        h.update(piece.encode("utf-8", "replace") + b"\x00")
    for p in parts:
        h.update(hashlib.sha256(p.data).digest())
    return h.hexdigest()
