"""One raw email → stored message (or a recorded bounce / dropped auto-reply), inside the
caller's unit of work. Shared by the webhook and the IMAP poller.

Threading, before `router.flows.ingest` (which then threads by `thread_refs`):
1. In-Reply-To / References naming a message of *this sender's* contact (ours or theirs);
2. else a conversation token (plus-address or subject) naming a conversation of that contact;
3. else ingest's fallback (the contact's open conversation, reopen window, or a new one).
References are checked against the sender's own conversations on purpose: a Message-ID is
not a secret (anyone in Cc has it), and a clinic must not let a third party's mail land in a
patient's conversation, where agents would answer the patient about it.

Machine mail never reaches ingest, so it can neither open a conversation nor be acknowledged:
a bounce marks our outbound message failed (with an event on its conversation), an
auto-reply is recorded as an event on the thread it answers, a loop is dropped.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels import signing
from channels.email import tokens
from channels.email.auth import UNVERIFIED, sender_authenticated
from channels.email.normalise import attachment_ref, to_inbound
from channels.email.parse import ParsedEmail, parse_email, valid_address
from models import Contact, ContactIdentity, Conversation, Message
from models.messages import AttachmentRef, Sender
from models.vocab import SENDER
from router.files import AttachmentStore
from router.flows.ingest import ahead as ingest_ahead
from router.flows.ingest import ingest
from router.group import ReadAhead
from router.repo.events import conv_event
from router.runtime import Runtime

log = logging.getLogger(__name__)

# DSN status classes meaning the mailbox will not exist tomorrow either (RFC 3463).
_GONE = ("5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10")


@dataclass(frozen=True)
class Outcome:
    status: Literal["stored", "duplicate", "ignored"]
    reason: str | None = None
    conversation_id: int | None = None
    message_id: int | None = None


def own_addresses(rt: Runtime) -> frozenset[str]:
    from_setting = rt.settings.email_from
    if not from_setting:
        return frozenset()
    addr = valid_address(tokens.address_of(from_setting)[1])
    return frozenset({addr}) if addr else frozenset()


@dataclass(frozen=True)
class Prepared:
    """A parsed human mail with its files stored: what `store_mail` writes."""

    parsed: ParsedEmail
    external_id: str
    reused: bool
    raw_ref: str | None
    attachments: tuple[AttachmentRef, ...]

    @property
    def key(self) -> str:
        """One sender's mails keep their order in a group commit."""
        return f"email:{self.parsed.from_addr}"

    def ahead(self, rt: Runtime) -> ReadAhead:
        """What the group commit reads ahead: the sender's identity as `store_mail` will
        name it (authenticated or not) and their live conversation."""
        parsed = self.parsed
        verdict = sender_authenticated(rt.settings, parsed.auth_results, parsed.from_addr)
        sender = parsed.from_addr if verdict.authenticated else UNVERIFIED + parsed.from_addr
        return ingest_ahead(rt, "email", Sender(external_id=sender), self.external_id)


async def receive(
    session: AsyncSession, rt: Runtime, raw: bytes, *, store: AttachmentStore
) -> Outcome:
    """Parse, classify, store attachments by reference, thread, ingest. `EmailRejected`
    (422) for mail nobody can answer; everything else is stored or deliberately ignored."""
    ready = await prepare(session, rt, raw, store=store)
    if isinstance(ready, Outcome):
        return ready
    return await store_mail(session, rt, ready)


async def prepare(
    session: AsyncSession, rt: Runtime, raw: bytes, *, store: AttachmentStore
) -> Prepared | Outcome:
    """Everything before the message's own writes: parse; machine mail handled here (its
    Outcome); the de-dup key; the raw mail and attachments stored on disk (not for a
    redelivery), so the writes that follow hold no transaction open across file I/O."""
    parsed = parse_email(raw, own_addresses=own_addresses(rt))
    if parsed.auto is not None:
        outcome = await _machine_mail(session, rt, parsed)
        log.info("email ignored", extra={"channel": "email", "auto": parsed.auto})
        return outcome

    external_id, reused = await dedup_key(session, parsed)
    existing = await session.scalar(
        select(Message.id).where(Message.channel == "email", Message.external_id == external_id)
    )
    refs: list[str] = []
    if existing is None:  # a redelivery stores nothing again (ingest answers "duplicate")
        refs = await store.aput_many([raw, *(p.data for p in parsed.attachments)])
    atts = tuple(attachment_ref(p, r) for p, r in zip(parsed.attachments, refs[1:], strict=False))
    return Prepared(parsed, external_id, reused, refs[0] if refs else None, atts)


async def store_mail(session: AsyncSession, rt: Runtime, ready: Prepared) -> Outcome:
    """Thread and ingest a prepared mail, in `session` (the webhook's group commit)."""
    parsed = ready.parsed
    verdict = sender_authenticated(rt.settings, parsed.auth_results, parsed.from_addr)
    msg = to_inbound(
        parsed,
        received_at=rt.now(),
        thread_refs=await thread_refs(session, parsed, authentic=verdict.authenticated),
        attachments=ready.attachments,
        raw_ref=ready.raw_ref,
        verdict=verdict,
        external_id=ready.external_id,
        message_id_reused=ready.reused,
    )
    res = await ingest(session, rt, msg)
    log.info(
        "email received",
        extra={
            "channel": "email",
            "conversation_id": res.conversation_id,
            "duplicate": res.duplicate,
            "attachments": len(ready.attachments),
        },
    )
    return Outcome(
        status="duplicate" if res.duplicate else "stored",
        conversation_id=res.conversation_id,
        message_id=res.message_id,
    )


async def dedup_key(session: AsyncSession, parsed: ParsedEmail) -> tuple[str, bool]:
    """The message's `external_id`, and whether its Message-ID was already another mail's.

    A Message-ID is only the sender's claim: other senders (or a broken client) reuse one.
    The same sender and the same content is a redelivery (the Message-ID itself, which
    ingest answers "duplicate"); anything else is a different mail, kept under
    `<Message-ID>#<hash of sender and content>` (so its own redelivery is a no-op too).
    """
    prior = await session.scalar(
        select(Message).where(Message.channel == "email", Message.external_id == parsed.message_id)
    )
    if prior is None:
        return parsed.message_id, False
    meta = prior.channel_meta or {}
    sender = str(meta.get(SENDER, "")).removeprefix(UNVERIFIED)
    # Stored before content hashes existed: the sender alone decides, as it did.
    same_content = meta.get("content_hash") in (None, parsed.content_hash)
    if prior.direction == "in" and sender == parsed.from_addr and same_content:
        return parsed.message_id, False
    digest = hashlib.sha256(f"{parsed.from_addr}\x00{parsed.content_hash}".encode()).hexdigest()
    return f"{parsed.message_id}#{digest[:16]}", True


async def contact_ids(session: AsyncSession, address: str) -> list[int]:
    """The live contact(s) holding this email identity (following merges)."""
    ids = list(
        await session.scalars(
            select(ContactIdentity.contact_id).where(
                ContactIdentity.kind == "email", ContactIdentity.value == address
            )
        )
    )
    out: list[int] = []
    for cid in ids:
        for _ in range(10):
            merged = await session.scalar(select(Contact.merged_into_id).where(Contact.id == cid))
            if merged is None:
                break
            cid = merged
        out.append(cid)
    return out


async def thread_refs(
    session: AsyncSession, parsed: ParsedEmail, *, authentic: bool = True
) -> tuple[str, ...]:
    """Unauthenticated mail threads only by a reference to one of *our* Message-IDs (keyed
    with an HMAC tag, so only those we mailed hold them), never by the guessable token or
    by the sender's own (public) Message-IDs."""
    addresses = [parsed.from_addr]
    if not authentic:
        addresses.append(UNVERIFIED + parsed.from_addr)
    owners = [c for a in addresses for c in await contact_ids(session, a)]
    if not owners:
        return ()  # a new sender has no thread to join
    refs = parsed.thread_ids
    if refs:
        query = (
            select(Message.external_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Message.channel == "email",
                Message.external_id.in_(refs),
                Conversation.contact_id.in_(owners),
            )
        )
        if not authentic:
            query = query.where(Message.direction == "out")
        known = set(await session.scalars(query))
        owned = tuple(r for r in refs if r in known)
        if owned:
            return owned
    if not authentic:
        return ()
    for conv_id in tokens.conversation_ids(parsed.recipients, parsed.subject):
        anchor = await session.scalar(
            select(Message.external_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.id == conv_id,
                Conversation.contact_id.in_(owners),
                Message.channel == "email",
                Message.external_id.is_not(None),
            )
            .order_by(Message.id.desc())
            .limit(1)
        )
        if anchor is not None:
            return (anchor,)
    return ()


async def _machine_mail(session: AsyncSession, rt: Runtime, parsed: ParsedEmail) -> Outcome:
    reason = f"{parsed.auto}: {parsed.auto_reason}"
    if parsed.auto == "bounce" and parsed.bounce is not None:
        # Only at a signed return path (VERP): the Message-IDs a DSN names are no secret, so
        # a forged "bounce" naming one must not mark a patient's address unreachable.
        mid = tokens.bounced_message_id(parsed.recipients, signing.bounce_key(rt.settings))
        ours = (
            await session.scalar(
                select(Message).where(
                    Message.id == mid, Message.channel == "email", Message.direction == "out"
                )
            )
            if mid is not None
            else None
        )
        if ours is None:
            log.info("bounce not at a signed return path: ignored", extra={"channel": "email"})
            return Outcome("ignored", reason)
        await _record_bounce(session, ours, parsed)
        return Outcome("ignored", reason, ours.conversation_id, ours.id)
    if parsed.auto == "auto_reply":
        verdict = sender_authenticated(rt.settings, parsed.auth_results, parsed.from_addr)
        refs = await thread_refs(session, parsed, authentic=verdict.authenticated)
        if refs:
            conv_id = await session.scalar(
                select(Message.conversation_id)
                .where(Message.channel == "email", Message.external_id.in_(refs))
                .limit(1)
            )
            conv = await session.get(Conversation, conv_id) if conv_id is not None else None
            if conv is not None:
                await conv_event(
                    session,
                    "email.auto_reply",
                    conv,
                    data={"reason": parsed.auto_reason, "channel": "email"},
                )
                return Outcome("ignored", reason, conv.id)
    return Outcome("ignored", reason)


async def _record_bounce(session: AsyncSession, message: Message, parsed: ParsedEmail) -> None:
    assert parsed.bounce is not None
    status, action = parsed.bounce.status, parsed.bounce.action
    # A "delayed" DSN is news, not failure: the server keeps trying.
    failed = action in (None, "failed") and not (status or "").startswith(("2.", "4."))
    if failed:
        message.delivery_status = "failed"
    message.channel_meta = {
        **(message.channel_meta or {}),
        "bounce": {"status": status, "action": action, "reason": parsed.auto_reason},
    }
    conv = await session.get(Conversation, message.conversation_id)
    if conv is None:
        return
    gone = failed and (status or "").startswith(_GONE)
    recipient = (message.channel_meta or {}).get("recipient")
    if gone and recipient:
        # The address does not exist: agents see it and no more replies are queued there.
        await session.execute(
            update(ContactIdentity)
            .where(
                ContactIdentity.contact_id == conv.contact_id,
                ContactIdentity.kind == "email",
                ContactIdentity.value == str(recipient),
            )
            .values(unreachable=True)
        )
    await conv_event(
        session,
        "message.bounced" if failed else "message.delivery_delayed",
        conv,
        data={"message_id": message.id, "channel": "email", "status": status},
    )
