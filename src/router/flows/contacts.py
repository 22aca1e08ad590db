"""Contacts and identities: one person across channels."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Contact, ContactIdentity, Conversation, ErasedIdentity, Event
from models.messages import IDENTITY_KIND, Sender
from router.errors import InvalidInput, NotFound
from router.repo import batch, events

# Contacts this unit of work created (session.info key): they have no conversations yet.
_FRESH = "careline.contacts.fresh"


def without_conversations(session: AsyncSession, contact: Contact) -> bool:
    """Whether `contact` was created in this unit of work and has no conversation yet (so
    there is nothing of theirs to look up)."""
    return contact.id in session.info.get(_FRESH, ())


def has_conversation(session: AsyncSession, contact: Contact) -> None:
    """A conversation of `contact` now exists (a batch may ingest more of their messages)."""
    session.info.get(_FRESH, set()).discard(contact.id)


# The sender identities `resolve_contact` found or created (session.info key), held here
# because the session's identity map only keeps weak references.
_HELD = "careline.contacts.identities"
_HELD_CONTACTS = "careline.contacts.contacts"


def known_identity(session: AsyncSession, kind: str, value: str) -> ContactIdentity | None:
    """The identity if `resolve_contact` found or created it in this unit of work (no SQL);
    None when unknown or no longer in the session (a rolled-back savepoint). Pending counts:
    in a batch a new identity is written with the batch's flush."""
    for obj in session.info.get(_HELD, ()):
        if obj.kind == kind and obj.value == value and _in_session(obj):
            return obj  # type: ignore[no-any-return]
    return None


def _in_session(obj: object) -> bool:
    """Persistent, or pending: in a batch a new row is written with the batch's flush. (A
    rolled-back savepoint's rows are neither.)"""
    state = inspect(obj)
    return bool(state.persistent or state.pending)


def identity_hash(key: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of one identity under the server's erasure key (`erased_identities`)."""
    return hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()


async def resolve_contact(
    session: AsyncSession,
    channel: str,
    sender: Sender,
    now: datetime,
    *,
    erasure_key: bytes | None = None,
) -> Contact:
    """Find or create the sender's contact.

    The channel identity finds a known sender; a *verified* phone or e-mail joins the sender
    to the person who already owns it (merging two contacts when both exist). Unverified
    values are only remembered as attributes, so nobody can claim another's identity.
    """
    keys = sender_keys(channel, sender)
    snap = batch.active(session)
    found: dict[tuple[str, str], ContactIdentity]
    if snap is not None and all((k, v) in snap.identities for k, v, _ in keys):
        # Read ahead for the whole batch (and kept current by the units before this one).
        found = {}
        for k, v, _ in keys:
            ident = snap.identities[(k, v)] or known_identity(session, k, v)
            if ident is not None and _in_session(ident):
                found[(k, v)] = ident
    else:
        found = await _find_identities(session, [(k, v) for k, v, _ in keys])

    contact_ids = sorted({i.contact_id for i in found.values()})
    pending = {c.id: c for c in snap.contacts if inspect(c).pending} if snap is not None else {}
    contacts = [pending.get(cid) or await _live_contact(session, cid) for cid in contact_ids]
    contact: Contact | None = min(contacts, key=lambda c: c.id) if contacts else None
    if contact is None:
        pairs = [(k, v) for k, v, _ in keys]
        if erasure_key is None:
            after_erasure = False
        elif snap is not None and all(p in snap.erased for p in pairs):
            after_erasure = any(snap.erased[p] for p in pairs)
        else:
            after_erasure = await _was_erased(session, erasure_key, pairs)
        contact = Contact(
            name=sender.name, attributes={"after_erasure": True} if after_erasure else {}
        )
        reserved = batch.take_id(session, "contacts")
        if reserved is not None:
            contact.id = reserved  # a batch's (PostgreSQL): written with its next flush
        session.add(contact)
        if contact.id is None:
            await session.flush()
        elif snap is not None:
            snap.contacts.append(contact)  # its next message in the batch finds it here
        await events.record(
            session,
            "contact.created",
            contact_id=contact.id,
            data={"after_erasure": True} if after_erasure else None,
            new_contact=True,
        )
        session.info.setdefault(_FRESH, set()).add(contact.id)
    else:
        for other in contacts:
            if other.id != contact.id:
                await merge_contacts(session, keep=contact, other=other, now=now, reason="identity")
        if sender.name and not contact.name:
            contact.name = sender.name

    held: list[ContactIdentity] = session.info.setdefault(_HELD, [])
    for k, v, verified in keys:
        if (k, v) not in found:
            ident = ContactIdentity(contact_id=contact.id, kind=k, value=v, verified=verified)
            session.add(ident)
            held.append(ident)
            if snap is not None:
                snap.identities[(k, v)] = ident
        else:
            held.append(found[(k, v)])
            if verified and not found[(k, v)].verified:
                found[(k, v)].verified = True
    attrs = dict(contact.attributes or {})
    if sender.phone and not sender.phone_verified:
        attrs["unverified_phone"] = sender.phone
    if sender.email and not sender.email_verified:
        attrs["unverified_email"] = sender.email
    if attrs != contact.attributes:
        contact.attributes = attrs
    if snap is None:
        # A new identity's unique constraint fires here, inside the caller's savepoint. In
        # a batch it fires at the unit's savepoint (or, without savepoints, fails the
        # batch, which is written again with them): a flush here would only write the
        # earlier units' changes one by one, which the batch's commit writes together.
        await session.flush()
    return contact


def sender_keys(channel: str, sender: Sender) -> list[tuple[str, str, bool]]:
    """The identities a sender is known by: (kind, value, verified), the channel's own first."""
    kind = IDENTITY_KIND[channel]
    # A call's identity is a verified phone only when it is a parsed E.164 number: a caller
    # id that does not parse ("raw:…") or a withheld one is remembered, never verified.
    # An e-mail whose From: was not authenticated arrives as "unverified:<address>".
    own_verified = (kind == "email" and not sender.external_id.startswith("unverified:")) or (
        kind == "phone" and sender.phone_verified and sender.phone == sender.external_id
    )
    keys: list[tuple[str, str, bool]] = [(kind, sender.external_id, own_verified)]
    if sender.phone and sender.phone_verified and kind != "phone":
        keys.append(("phone", sender.phone, True))
    if sender.email and sender.email_verified and kind != "email":
        keys.append(("email", sender.email, True))
    return keys


async def _find_identities(
    session: AsyncSession, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], ContactIdentity]:
    """The identities of `pairs` that exist, each with its contact loaded: one round trip
    (a follow-up's `_live_contact` then reads the contact from the identity map)."""
    by_kind: dict[str, list[str]] = {}
    for k, v in pairs:
        by_kind.setdefault(k, []).append(v)
    rows = (
        await session.execute(
            select(ContactIdentity, Contact)
            .join(Contact, Contact.id == ContactIdentity.contact_id)
            .where(
                or_(
                    *(
                        and_(ContactIdentity.kind == k, ContactIdentity.value.in_(vs))
                        for k, vs in sorted(by_kind.items())
                    )
                )
            )
        )
    ).all()
    found = {(i.kind, i.value): i for i, _c in rows}
    # The contacts ride along with their identities (strong references through `found`'s
    # objects are not enough: the identity map's references to contacts are weak).
    found_contacts = [c for _i, c in rows]
    session.info.setdefault(_HELD_CONTACTS, []).extend(found_contacts)
    return found


async def read_ahead(
    session: AsyncSession,
    senders: Sequence[tuple[str, Sender]],
    *,
    erasure_key: bytes | None,
) -> list[int]:
    """Load the identities of every sender of a batch in one query (and, for the senders
    nobody knows yet, whether they were erased, in one more); the live contacts' ids."""
    snap = batch.start(session)
    per_sender = [[(k, v) for k, v, _ in sender_keys(ch, s)] for ch, s in senders]
    wanted = sorted({p for pairs in per_sender for p in pairs} - snap.identities.keys())
    if not wanted:
        return []
    found = await _find_identities(session, wanted)
    for p in wanted:
        snap.identities[p] = found.get(p)
    snap.contacts.extend(session.info.get(_HELD_CONTACTS, ()))
    if erasure_key is not None:
        unknown = sorted(
            {p for pairs in per_sender if not any(q in found for q in pairs) for p in pairs}
        )
        if unknown:
            hashes = {identity_hash(erasure_key, k, v): (k, v) for k, v in unknown}
            erased = set(
                await session.scalars(
                    select(ErasedIdentity.value_hash).where(
                        ErasedIdentity.value_hash.in_(list(hashes))
                    )
                )
            )
            for h, p in hashes.items():
                snap.erased[p] = h in erased
    contacts = {i.contact_id for i in found.values()}
    return sorted(
        c.id
        for c in snap.contacts
        if c.id in contacts and c.merged_into_id is None and inspect(c).persistent
    )


async def _was_erased(session: AsyncSession, key: bytes, keys: list[tuple[str, str]]) -> bool:
    hashes = [identity_hash(key, k, v) for k, v in keys]
    found = await session.scalar(
        select(ErasedIdentity.id).where(ErasedIdentity.value_hash.in_(hashes)).limit(1)
    )
    return found is not None


async def _live_contact(session: AsyncSession, contact_id: int) -> Contact:
    """Follow `merged_into_id` to the contact that survives."""
    contact = await session.get(Contact, contact_id)
    seen = 0
    while contact is not None and contact.merged_into_id is not None and seen < 10:
        contact = await session.get(Contact, contact.merged_into_id)
        seen += 1
    if contact is None:
        raise NotFound(f"contact {contact_id} not found")
    return contact


async def merge_contacts(
    session: AsyncSession,
    *,
    keep: Contact,
    other: Contact,
    now: datetime,
    reason: str,
    agent_id: int | None = None,
) -> Contact:
    """Move `other`'s identities and conversations to `keep`; `other` remains as a tombstone."""
    if keep.id == other.id:
        raise InvalidInput("cannot merge a contact into itself")
    if other.merged_into_id is not None or keep.merged_into_id is not None:
        raise InvalidInput("contact was already merged")
    await session.execute(
        update(ContactIdentity)
        .where(ContactIdentity.contact_id == other.id)
        .values(contact_id=keep.id)
    )
    await session.execute(
        update(Conversation).where(Conversation.contact_id == other.id).values(contact_id=keep.id)
    )
    batch.forget_conversations(session)
    await events.write_pending(session)  # this transaction's own events move too
    await session.execute(
        update(Event).where(Event.contact_id == other.id).values(contact_id=keep.id)
    )
    attrs = dict(other.attributes or {})
    attrs.update(keep.attributes or {})
    # Per-visitor mail fallbacks (web chat confirmations) of both contacts stay apart.
    mail = {
        **dict((other.attributes or {}).get("webchat_mail") or {}),
        **dict((keep.attributes or {}).get("webchat_mail") or {}),
    }
    if mail:
        attrs["webchat_mail"] = mail
    keep.attributes = attrs
    keep.name = keep.name or other.name
    keep.updated_at = now
    other.merged_into_id = keep.id
    other.updated_at = now
    await session.flush()
    await events.record(
        session,
        "contact.merged",
        contact_id=keep.id,
        agent_id=agent_id,
        data={"merged_contact_id": other.id, "reason": reason},
    )
    return keep


async def get_contact(session: AsyncSession, contact_id: int) -> Contact:
    contact = await session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found")
    return contact


async def identities(session: AsyncSession, contact_id: int) -> list[ContactIdentity]:
    rows = await session.scalars(
        select(ContactIdentity)
        .where(ContactIdentity.contact_id == contact_id)
        .order_by(ContactIdentity.id)
    )
    return list(rows)
