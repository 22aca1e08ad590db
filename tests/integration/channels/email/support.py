"""Builders for test mail (plain RFC 5322 bytes, as a provider would post them)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

AUTHSERV = "mx.clinica.example"


def mail(
    *,
    sender: str = "Ana Ruiz <Ana.Ruiz@Correo.Example>",
    to: str = "ayuda@clinica.example",
    subject: str = "Consulta",
    body: str = "Hola, quisiera pedir una cita.",
    message_id: str | None = "<m1@correo.example>",
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
    auth: str | None = "dmarc=pass header.from={domain}",
) -> bytes:
    """`auth`: the receiving provider's verdict, written as `Authentication-Results:
    mx.clinica.example; <auth>` (the fixture trusts that authserv-id); None: no header."""
    msg = EmailMessage()
    if auth is not None:
        domain = sender.rpartition("@")[2].strip(">").lower()
        msg["Authentication-Results"] = f"{AUTHSERV}; " + auth.format(domain=domain)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2024, 6, 4, 9, 0, tzinfo=UTC))
    if message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg.as_bytes()
