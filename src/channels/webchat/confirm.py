"""Confirming a web chat visitor's e-mail: the signed link we mail, and what clicking it does.

A visitor may type an e-mail into the widget's session; until they prove they read that
mailbox it stays an unverified attribute and never joins them to anyone. We mail a link
carrying a token (visitor id, address, locale, expiry) signed with a subkey of the web chat
key, so a visitor token, which carries the same unverified address, can never pass for a
confirmation. Opening the link shows a button; pressing it (a POST) records the address as
the mail fallback of *this visitor's own* conversations, and nothing more. Two steps, because
mail scanners open every link in a message: a GET that confirmed would let anyone who typed a
victim's address get it confirmed by the victim's scanner.

The press proves that the mailbox's owner agreed to receive this visitor's replies, not that
the visitor is that owner: anyone can open a chat with a patient's address, and the patient,
seeing a genuine mail, may well press Confirm. So a confirmation never adds an `email`
identity and never merges contacts (that would let a stranger write into the patient's
conversation and receive the clinician's replies); joining people stays an agent's merge.
"""

from __future__ import annotations

import html
import logging
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import DeliveryError
from channels.email.adapter import EmailChannel
from channels.webchat.adapter import WebchatChannel
from channels.webchat.tokens import VERSION, BadToken, opt_str, sign_body, subkey, verify_body
from models import Contact, ContactIdentity
from models.messages import Sender
from router.flows.contacts import resolve_contact
from router.repo import events
from router.runtime import Runtime

log = logging.getLogger(__name__)

PURPOSE = b"careline/webchat/confirm-email/v1"
TTL_S = 2 * 86400
PATH = "/webchat/confirm-email"
# One mail per address per instance in this window: the session endpoint is open to anyone,
# and must not become a way to flood a stranger's mailbox.
RESEND_AFTER_S = 600.0
# Contact attribute: {visitor id: confirmed address}, the mail fallback of that visitor only.
MAIL_ATTR = "webchat_mail"


class ConfirmError(BadToken):
    """The link is not one of ours (400), or is no longer valid (`ExpiredToken`: 410)."""


@dataclass(frozen=True)
class ConfirmClaims:
    visitor_id: str
    email: str
    locale: str | None
    expires_at: int


def lang(locale: str | None) -> str:
    """es / ru / en from a locale such as `es-MX`; English when unknown."""
    code = (locale or "").replace("_", "-").split("-")[0].lower()
    return code if code in TEXTS else "en"


def make_token(key: bytes, visitor_id: str, email: str, locale: str | None, now: datetime) -> str:
    body: dict[str, object] = {
        "ver": VERSION,
        "typ": "confirm-email",
        "v": visitor_id,
        "e": email,
        "exp": int(now.timestamp()) + TTL_S,
    }
    if locale:
        body["l"] = locale
    return sign_body(subkey(key, PURPOSE), body)


def read_token(key: bytes, token: str, now: datetime) -> ConfirmClaims:
    """The claims of a genuine, unexpired confirmation token, or `BadToken`/`ExpiredToken`."""
    body = verify_body(subkey(key, PURPOSE), token, now)
    visitor, email = opt_str(body, "v"), opt_str(body, "e")
    if body.get("typ") != "confirm-email" or visitor is None or email is None:
        raise ConfirmError("malformed token")
    return ConfirmClaims(visitor, email, opt_str(body, "l"), body["exp"])


def link(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{PATH}?token={quote(token, safe='')}"


TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "subject": "Confirm your email address",
        "body": (
            "Hello,\n\nPlease confirm that this address is yours, so that we can email you our "
            "replies from the chat when you are not on the page:\n\n{link}\n\n"
            "The link is valid for 48 hours. If you did not ask for this, ignore this email."
        ),
        "ask_title": "Confirm your email",
        "ask": "Confirm that {email} is your address.",
        "button": "Confirm",
        "done_title": "Email confirmed",
        "done": "Thank you. We will email you our replies when you are not in the chat.",
    },
    "es": {
        "subject": "Confirme su dirección de correo",
        "body": (
            "Hola:\n\nConfirme que esta dirección es suya para que podamos enviarle por correo "
            "nuestras respuestas del chat cuando no esté en la página:\n\n{link}\n\n"
            "El enlace es válido durante 48 horas. Si no lo ha solicitado, ignore este correo."
        ),
        "ask_title": "Confirme su correo",
        "ask": "Confirme que {email} es su dirección.",
        "button": "Confirmar",
        "done_title": "Correo confirmado",
        "done": "Gracias. Le enviaremos nuestras respuestas por correo cuando no esté en el chat.",
    },
    "ru": {
        "subject": "Подтвердите адрес электронной почты",
        "body": (
            "Здравствуйте!\n\nПодтвердите, что это ваш адрес, чтобы мы могли присылать ответы "
            "из чата на почту, когда вас нет на странице:\n\n{link}\n\n"
            "Ссылка действует 48 часов. Если вы этого не запрашивали, просто проигнорируйте "
            "это письмо."
        ),
        "ask_title": "Подтвердите адрес почты",
        "ask": "Подтвердите, что {email} — ваш адрес.",
        "button": "Подтвердить",
        "done_title": "Адрес подтверждён",
        "done": "Спасибо. Мы пришлём ответы на почту, когда вас не будет в чате.",
    },
}


def build_mail(
    *, from_header: str, from_addr: str, to: str, url: str, locale: str | None, date: datetime
) -> EmailMessage:
    t = TEXTS[lang(locale)]
    mail = EmailMessage()
    mail["From"] = from_header
    mail["To"] = to
    mail["Subject"] = t["subject"]
    mail["Date"] = format_datetime(date)
    mail["Message-ID"] = make_msgid(domain=from_addr.rpartition("@")[2] or None)
    # RFC 3834: nobody's auto-responder should answer this.
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(t["body"].format(link=url))
    return mail


def page(title: str, body_html: str, locale: str | None) -> str:
    return (
        f'<!DOCTYPE html><html lang="{lang(locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem">'
        f"<h1>{html.escape(title)}</h1>{body_html}</body></html>"
    )


def ask_page(claims: ConfirmClaims) -> str:
    t = TEXTS[lang(claims.locale)]
    # No action: the form posts back to this very URL, token included.
    form = (
        f"<p>{html.escape(t['ask'].format(email=claims.email))}</p>"
        f'<form method="post"><button type="submit">{html.escape(t["button"])}</button></form>'
    )
    return page(t["ask_title"], form, claims.locale)


def done_page(claims: ConfirmClaims) -> str:
    t = TEXTS[lang(claims.locale)]
    return page(t["done_title"], f"<p>{html.escape(t['done'])}</p>", claims.locale)


# --- sending ----------------------------------------------------------------------------

_sent: weakref.WeakKeyDictionary[WebchatChannel, dict[str, float]] = weakref.WeakKeyDictionary()


def _may_send(channel: WebchatChannel, email: str) -> bool:
    now = time.monotonic()
    sent = _sent.setdefault(channel, {})
    for addr in [a for a, t in sent.items() if t <= now - RESEND_AFTER_S]:
        del sent[addr]
    if email in sent:
        return False
    sent[email] = now
    return True


def confirmed_address(contact: Contact | None, visitor_id: str) -> str | None:
    """The address `visitor_id` confirmed for its mail fallback, if any."""
    mapping = (contact.attributes or {}).get(MAIL_ATTR) if contact is not None else None
    value = mapping.get(visitor_id) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) else None


async def _visitor_contact(session: AsyncSession, visitor_id: str) -> Contact | None:
    return await session.scalar(
        select(Contact)
        .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
        .where(ContactIdentity.kind == "webchat", ContactIdentity.value == visitor_id)
    )


async def already_confirmed(rt: Runtime, visitor_id: str, email: str) -> bool:
    async with rt.db.session() as session:
        contact = await _visitor_contact(session, visitor_id)
        return confirmed_address(contact, visitor_id) == email


async def send_confirmation(
    rt: Runtime, channel: WebchatChannel, visitor_id: str, email: str, locale: str | None
) -> bool:
    """Mail the confirmation link (a background task: never raises). True when sent.

    Logs say what failed, never to whom: an address is personal data."""
    mailer = rt.channels.get("email")
    if not isinstance(mailer, EmailChannel):
        return False
    try:
        if await already_confirmed(rt, visitor_id, email) or not _may_send(channel, email):
            return False
        now = rt.now()
        url = link(rt.settings.public_url, make_token(channel.key, visitor_id, email, locale, now))
        mail = build_mail(
            from_header=mailer.email_from,
            from_addr=mailer.from_addr,
            to=email,
            url=url,
            locale=locale,
            date=now,
        )
        await mailer.submit(mail, email)
    except DeliveryError as exc:
        # The reason is ours ("smtp 550 recipient refused"), free of addresses.
        log.warning("webchat e-mail confirmation not sent: %s", exc.reason)
        _sent.get(channel, {}).pop(email, None)  # let the visitor try again
        return False
    except Exception as exc:
        log.warning("webchat e-mail confirmation not sent: %s", type(exc).__name__)
        _sent.get(channel, {}).pop(email, None)
        return False
    return True


# --- confirming -------------------------------------------------------------------------


async def confirm(rt: Runtime, claims: ConfirmClaims) -> int:
    """Record the address as the mail fallback of this visitor's conversations, in one unit
    of work; the visitor's contact id. No identity, no merge (see the module docstring).
    Idempotent: confirming again finds the address recorded and changes nothing."""
    for attempt in (1, 2):
        try:
            async with rt.db.session() as session:
                now = rt.now()
                contact = await _visitor_contact(session, claims.visitor_id)
                if contact is None:  # confirmed before writing: the visitor's own contact
                    contact = await resolve_contact(
                        session,
                        "webchat",
                        Sender(external_id=claims.visitor_id),
                        now,
                        erasure_key=rt.settings.erasure_hmac_key(),
                    )
                if confirmed_address(contact, claims.visitor_id) != claims.email:
                    attrs = dict(contact.attributes or {})
                    mapping = attrs.get(MAIL_ATTR)
                    mapping = dict(mapping) if isinstance(mapping, dict) else {}
                    mapping[claims.visitor_id] = claims.email
                    attrs[MAIL_ATTR] = mapping
                    contact.attributes = attrs
                    contact.updated_at = now
                    await events.record(
                        session,
                        "webchat.email_confirmed",
                        contact_id=contact.id,
                        data={"via": "webchat", "scope": "mail_fallback"},
                    )
                return contact.id
        except IntegrityError:
            # Two clicks at once both created the visitor's contact: the second run finds it.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
