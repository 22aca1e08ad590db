"""Pure construction of outbound mail and of the SMTP settings (no I/O)."""

from __future__ import annotations

import hashlib
import hmac
import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import parse_qs, unquote, urlsplit

from channels.email import tokens
from channels.email.parse import LOOP_HEADER

MAX_REFERENCES = 10


@dataclass(frozen=True)
class SmtpConfig:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # implicit TLS (smtps://, port 465)
    start_tls: bool | None  # None: upgrade when the server offers STARTTLS
    validate_certs: bool
    timeout: float


def smtp_config(url: str) -> SmtpConfig:
    """`smtp://[user:pass@]host[:port][?starttls=require|never&verify=false&timeout=30]` or
    `smtps://…` (implicit TLS). User and password are URL-decoded."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("CARELINE_SMTP_URL must look like smtp://user:pass@host:587")
    query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
    starttls = query.get("starttls", "auto")
    implicit = scheme == "smtps"
    return SmtpConfig(
        hostname=parts.hostname,
        port=parts.port or (465 if implicit else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=implicit,
        start_tls=(
            False
            if implicit or starttls in ("never", "off", "false")
            else True
            if starttls in ("require", "required", "true")
            else None
        ),  # fmt: skip
        validate_certs=query.get("verify", "true") not in ("false", "0", "no"),
        timeout=float(query.get("timeout", "30")),
    )


def new_message_id(from_addr: str, conversation_id: int, message_id: int, key: bytes) -> str:
    """Ours, without angle brackets. The same on every retry of one outbound message, so a
    copy sent twice (at-least-once delivery) is one mail to the customer's client; keyed, so
    it cannot be guessed from the ids."""
    domain = from_addr.rpartition("@")[2] or "careline.invalid"
    tag = hmac.new(key, f"{conversation_id}.{message_id}".encode(), hashlib.sha256).hexdigest()
    return f"careline.{conversation_id}.{message_id}.{tag[:16]}@{domain}"


def references_chain(customer_refs: tuple[str, ...], customer_id: str | None) -> tuple[str, ...]:
    """RFC 5322 §3.6.4: their References then their Message-ID; long chains keep the first
    (thread root) and the most recent ones."""
    chain = list(dict.fromkeys([*customer_refs, *([customer_id] if customer_id else [])]))
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    return tuple(chain)


def text_to_html(text: str) -> str:
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    body = "\n".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        f'<body style="font-family:sans-serif;font-size:14px">\n{body}\n</body></html>'
    )


@dataclass(frozen=True)
class FileAttachment:
    name: str
    mime: str
    data: bytes


def build_reply(
    *,
    from_header: str,
    to: str,
    conversation_id: int,
    message_id: str,
    subject: str | None,
    text: str,
    date: datetime,
    in_reply_to: str | None,
    references: tuple[str, ...],
    automatic: bool,
    attachments: tuple[FileAttachment, ...] = (),
) -> EmailMessage:
    """A reply: text/plain plus a simple HTML alternative, threading headers, our token."""
    mail = EmailMessage()
    mail["From"] = from_header
    mail["To"] = to
    mail["Reply-To"] = tokens.plus_address(from_header, conversation_id)
    mail["Subject"] = tokens.reply_subject(subject, conversation_id)
    mail["Date"] = format_datetime(date)
    mail["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        mail["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        mail["References"] = " ".join(f"<{r}>" for r in references)
    if automatic:
        # RFC 3834: auto-responders must not answer this (no acknowledgement ping-pong).
        mail["Auto-Submitted"] = "auto-replied"
    mail[LOOP_HEADER] = tokens.token(conversation_id)
    mail.set_content(text)
    mail.add_alternative(text_to_html(text), subtype="html")
    for att in attachments:
        maintype, _, subtype = att.mime.partition("/")
        if not subtype:
            maintype, subtype = "application", "octet-stream"
        mail.add_attachment(att.data, maintype=maintype, subtype=subtype, filename=att.name)
    return mail


def build_page(
    *, from_header: str, to: str, message_id: str, subject: str, text: str, date: datetime
) -> EmailMessage:
    """A page to the on-call supervisor: no conversation token and no threading into the
    patient's mail thread, so an answer from the supervisor's mailbox can never land in the
    patient's conversation; marked automatic (RFC 3834) and kept loop-protected."""
    mail = EmailMessage()
    mail["From"] = from_header
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = format_datetime(date)
    mail["Message-ID"] = f"<{message_id}>"
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Priority"] = "1"
    mail[LOOP_HEADER] = "page"
    mail.set_content(text)
    return mail
