"""`EmailChannel`: replies over SMTP (aiosmtplib), threaded to the customer's last message.

The outbox gives us the text, the recipient and the conversation; the threading headers come
from the customer's last inbound email, read in a short unit of work of our own (the outbox
calls `send` outside any transaction, so this never nests). Our Message-ID is returned as
`external_id`; the outbox stores it on the message, so the customer's answer threads by it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import aiosmtplib
from sqlalchemy import select

from channels import signing
from channels.base import DeliveryError
from channels.email import compose, tokens
from channels.email.auth import UNVERIFIED
from channels.email.compose import FileAttachment, SmtpConfig
from channels.email.parse import valid_address
from models import Conversation, Message
from models.base import utcnow
from models.messages import DeliveryResult, OutboundMessage
from models.vocab import ChannelName
from router.db import Database
from router.files import AttachmentStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThreadContext:
    subject: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()


class EmailChannel:
    name: ClassVar[ChannelName] = "email"

    def __init__(
        self,
        *,
        smtp: SmtpConfig,
        email_from: str,
        db: Database | None,
        store: AttachmentStore,
        clock: Callable[[], datetime] = utcnow,
        id_key: bytes | None = None,
        bounce_key: bytes | None = None,
    ) -> None:
        self.smtp = smtp
        # Keys our Message-IDs. From WEBHOOK_SECRET so every instance and restart derives the
        # same id for a message; without it, per process (ids then repeat only within one).
        self.id_key = id_key or secrets.token_bytes(32)
        # Signs the return path of each reply (VERP); None: the plain address, and bounces
        # are never believed (no stable key to check them with).
        self.bounce_key = bounce_key
        self.email_from = email_from
        self.from_addr = tokens.address_of(email_from)[1]
        self.db = db
        self.store = store
        self.clock = clock
        # The EHLO name, looked up once: aiosmtplib otherwise resolves socket.getfqdn() in a
        # thread for every mail sent.
        self._ehlo_name: str | None = None

    @classmethod
    def from_settings(cls, settings: Any, db: Database) -> EmailChannel | None:
        """None unless both CARELINE_SMTP_URL and CARELINE_EMAIL_FROM are set."""
        url = settings.smtp_url.get_secret_value() if settings.smtp_url else ""
        if not url or not settings.email_from:
            return None
        return cls(
            smtp=compose.smtp_config(url),
            email_from=settings.email_from,
            db=db,
            store=AttachmentStore.from_settings(settings),
            id_key=b"message-id:" + settings.webhook_secret.get_secret_value().encode()
            if settings.webhook_secret
            else None,
            bounce_key=signing.bounce_key(settings),
        )

    async def thread_context(self, conversation_id: int) -> ThreadContext:
        if self.db is None:
            return ThreadContext()
        async with self.db.session() as session:
            conv_subject = await session.scalar(
                select(Conversation.subject).where(Conversation.id == conversation_id)
            )
            last = await session.scalar(
                select(Message)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.channel == "email",
                    Message.direction == "in",
                    Message.external_id.is_not(None),
                )
                .order_by(Message.id.desc())
                .limit(1)
            )
        if last is None:
            return ThreadContext(subject=conv_subject)
        meta = last.channel_meta or {}
        refs = tuple(str(r) for r in meta.get("references") or ())
        # A mail whose Message-ID another mail had is stored as `<id>#<hash>`; reply to <id>.
        their_id = str(meta.get("message_id") or last.external_id)
        return ThreadContext(
            subject=conv_subject,
            in_reply_to=their_id,
            references=compose.references_chain(refs, their_id),
        )

    async def _files(self, msg: OutboundMessage) -> tuple[tuple[FileAttachment, ...], str]:
        files: list[FileAttachment] = []
        links: list[str] = []
        for att in msg.attachments:
            if AttachmentStore.owns(att.url):
                try:
                    data = await asyncio.to_thread(self.store.get, att.url)
                except OSError as exc:
                    raise DeliveryError(
                        "an attachment is missing from the store", retryable=False
                    ) from exc
                files.append(
                    FileAttachment(
                        att.name or "attachment", att.mime or "application/octet-stream", data
                    )
                )
            elif att.url.startswith(("http://", "https://")):
                links.append(f"{att.name or 'Attachment'}: {att.url}")
        text = msg.text if not links else msg.text.rstrip() + "\n\n" + "\n".join(links)
        return tuple(files), text

    async def send(self, msg: OutboundMessage) -> DeliveryResult:
        # "unverified:<address>": a sender whose From: was not authenticated; an agent's
        # reply still goes to that address (its owner, whoever wrote).
        to = valid_address(msg.recipient.removeprefix(UNVERIFIED))
        if to is None:
            raise DeliveryError("the recipient is not a valid email address", retryable=False)
        if msg.kind == "page":
            return await self._send_page(msg, to)
        ctx = await self.thread_context(msg.conversation_id)
        files, text = await self._files(msg)
        message_id = compose.new_message_id(
            self.from_addr, msg.conversation_id, msg.message_id, self.id_key
        )
        mail = compose.build_reply(
            from_header=self.email_from,
            to=to,
            conversation_id=msg.conversation_id,
            message_id=message_id,
            subject=msg.subject or ctx.subject,
            text=text,
            date=self.clock(),
            in_reply_to=msg.reply_to_external_id or ctx.in_reply_to,
            references=msg.references or ctx.references,
            automatic=msg.kind in ("ack", "crisis_ack", "emergency_ack", "csat"),
            attachments=files,
        )
        sender = (
            tokens.bounce_address(self.from_addr, msg.message_id, self.bounce_key)
            if self.bounce_key
            else None
        )
        await self.submit(mail, to, sender=sender)
        return DeliveryResult(status="sent", external_id=message_id)

    async def _send_page(self, msg: OutboundMessage, to: str) -> DeliveryResult:
        # Pages are numbered apart from messages: their own key, so ids never collide.
        message_id = compose.new_message_id(
            self.from_addr, msg.conversation_id, msg.message_id, self.id_key + b":page"
        )
        mail = compose.build_page(
            from_header=self.email_from,
            to=to,
            message_id=message_id,
            subject=msg.subject or "[Careline page]",
            text=msg.text,
            date=self.clock(),
        )
        await self.submit(mail, to)
        return DeliveryResult(status="sent", external_id=message_id)

    async def submit(self, mail: Any, to: str, *, sender: str | None = None) -> None:
        cfg = self.smtp
        if self._ehlo_name is None:
            self._ehlo_name = await asyncio.to_thread(socket.getfqdn)
        try:
            await aiosmtplib.send(
                mail,
                sender=sender or self.from_addr,
                recipients=[to],
                hostname=cfg.hostname,
                port=cfg.port,
                local_hostname=self._ehlo_name,
                username=cfg.username,
                password=cfg.password,
                use_tls=cfg.use_tls,
                start_tls=cfg.start_tls,
                validate_certs=cfg.validate_certs,
                timeout=cfg.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise _from_code(min(codes) if codes else 550, "recipient refused") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _from_code(exc.code, type(exc).__name__) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            # Connection refused, TLS failure, timeout, server hung up: the next try may work.
            raise DeliveryError(f"smtp unavailable: {type(exc).__name__}", retryable=True) from exc

    async def aclose(self) -> None:
        return None  # one connection per send: nothing held open


def _from_code(code: int, what: str) -> DeliveryError:
    """5xx: the server will never accept it (dead-letter now); 4xx: try again later."""
    if 500 <= code < 600:
        # 550/551/553 to RCPT mean the mailbox does not exist or is not accepted.
        unreachable = what == "recipient refused" and code in (550, 551, 553)
        return DeliveryError(f"smtp {code} {what}", retryable=False, unreachable=unreachable)
    return DeliveryError(f"smtp {code} {what}", retryable=True)
