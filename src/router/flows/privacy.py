"""Health data rights: export everything held about a person; erase it on request.

Erasure keeps the shape of the history (conversations, message rows, events) so audits and
statistics stay true, but removes what identifies or describes the person, across every contact
merged into theirs at any depth: names, identities (a salted hash of each stays), message text,
channel metadata, attachments, tags, routing reasons, agents' reasons, callback numbers.
Undelivered replies die; open conversations close, their SLA timers stop, callbacks cancel.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Assignment,
    Attachment,
    CallbackRequest,
    Contact,
    ContactIdentity,
    Conversation,
    CrisisWatch,
    ErasedIdentity,
    Event,
    Message,
    OutboxItem,
    SlaTimer,
)
from router.errors import Conflict, NotFound
from router.files import AttachmentStore
from router.flows import contacts
from router.repo import audit as desk_audit
from router.repo import events
from router.repo import search as desk_search
from router.repo.events import conv_event

ERASED = "[erased]"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def _contact(session: AsyncSession, contact_id: int) -> Contact:
    contact = await session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found")
    if contact.merged_into_id is not None:
        raise Conflict(
            f"contact {contact_id} was merged into {contact.merged_into_id}: use that id"
        )
    return contact


async def merge_chain(session: AsyncSession, contact_id: int) -> list[int]:
    """The contact and every contact merged into it, however deep (a → b → c)."""
    ids = [contact_id]
    frontier = [contact_id]
    while frontier:
        children = [
            i
            for i in await session.scalars(
                select(Contact.id).where(Contact.merged_into_id.in_(frontier))
            )
            if i not in ids
        ]
        ids.extend(children)
        frontier = children
    return ids


async def export(session: AsyncSession, contact_id: int) -> dict[str, Any]:
    """Everything held about one person, as plain JSON (subject access request): what erasure
    would remove, plus the trail it keeps."""
    contact = await _contact(session, contact_id)
    ids = await merge_chain(session, contact.id)
    merged = list(
        await session.scalars(select(Contact).where(Contact.id.in_(ids[1:])).order_by(Contact.id))
    )
    idents = await session.scalars(
        select(ContactIdentity).where(ContactIdentity.contact_id.in_(ids))
    )
    convs = list(
        await session.scalars(
            select(Conversation).where(Conversation.contact_id.in_(ids)).order_by(Conversation.id)
        )
    )
    conv_ids = [c.id for c in convs]
    msgs = list(
        await session.scalars(
            select(Message).where(Message.conversation_id.in_(conv_ids)).order_by(Message.id)
        )
    )
    atts: dict[int, list[dict[str, Any]]] = {}
    for a in await session.scalars(
        select(Attachment).where(Attachment.message_id.in_([m.id for m in msgs]))
    ):
        atts.setdefault(a.message_id, []).append(
            {"kind": a.kind, "url": a.url, "mime": a.mime, "size": a.size, "name": a.name}
        )
    assigns: dict[int, list[dict[str, Any]]] = {}
    for asg in await session.scalars(
        select(Assignment).where(Assignment.conversation_id.in_(conv_ids)).order_by(Assignment.id)
    ):
        assigns.setdefault(asg.conversation_id, []).append(
            {
                "agent_id": asg.agent_id,
                "assigned_by_id": asg.assigned_by_id,
                "reason": asg.reason,
                "assigned_at": _iso(asg.assigned_at),
                "ended_at": _iso(asg.ended_at),
            }
        )
    cbs: dict[int, list[dict[str, Any]]] = {}
    for cb in await session.scalars(
        select(CallbackRequest)
        .where(CallbackRequest.conversation_id.in_(conv_ids) | CallbackRequest.contact_id.in_(ids))
        .order_by(CallbackRequest.id)
    ):
        cbs.setdefault(cb.conversation_id, []).append(
            {
                "id": cb.id,
                "phone": cb.phone,
                "status": cb.status,
                "note": cb.note,
                "missed_count": cb.missed_count,
                "attempts": cb.attempts,
                "first_call_at": _iso(cb.first_call_at),
                "last_call_at": _iso(cb.last_call_at),
                "last_call_status": cb.last_call_status,
                "due_at": _iso(cb.due_at),
                "outcome": cb.outcome,
                "closed_at": _iso(cb.closed_at),
            }
        )
    await events.write_pending(session)  # this transaction's own events too
    evs = await session.scalars(
        select(Event)
        .where(Event.contact_id.in_(ids) | Event.conversation_id.in_(conv_ids))
        .order_by(Event.id)
    )
    return {
        "contact": {
            "id": contact.id,
            "name": contact.name,
            "attributes": contact.attributes,
            "created_at": _iso(contact.created_at),
            "merged_contact_ids": ids[1:],
        },
        # Contacts merged into this one at any depth: each keeps what it was created with.
        "merged_contacts": [
            {
                "id": m.id,
                "name": m.name,
                "attributes": m.attributes,
                "merged_into_id": m.merged_into_id,
                "created_at": _iso(m.created_at),
            }
            for m in merged
        ],
        "identities": [
            {"kind": i.kind, "value": i.value, "verified": i.verified, "unreachable": i.unreachable}
            for i in idents
        ],
        "conversations": [
            {
                "id": c.id,
                "channel": c.channel,
                "status": c.status,
                "priority": c.priority,
                "tags": c.tags,
                "routing_reasons": c.routing_reasons,
                "language": c.language,
                "subject": c.subject,
                "created_at": _iso(c.created_at),
                "resolved_at": _iso(c.resolved_at),
                "csat": c.csat,
                "assignments": assigns.get(c.id, []),
                "callbacks": cbs.get(c.id, []),
                "messages": [
                    _message(m, atts.get(m.id, [])) for m in msgs if m.conversation_id == c.id
                ],
            }
            for c in convs
        ],
        # Who read the person's messages and record, when and from where (router.repo.audit).
        "read_audit": [desk_audit.as_dict(r) for r in await desk_audit.for_contacts(session, ids)],
        "events": [
            {
                "id": e.id,
                "type": e.type,
                "conversation_id": e.conversation_id,
                "agent_id": e.agent_id,
                "created_at": _iso(e.created_at),
                "data": e.data,
            }
            for e in evs
        ],
    }


def _message(m: Message, attachments: list[dict[str, Any]]) -> dict[str, Any]:
    """A message as exported: internal notes too, earlier versions of an edited message, the
    raw mail's store reference and the call's metadata (all in `channel_meta`)."""
    meta = dict(m.channel_meta or {})
    return {
        "id": m.id,
        "direction": m.direction,
        "channel": m.channel,
        "kind": m.kind,
        "text": m.text,
        "author_agent_id": m.author_agent_id,
        "created_at": _iso(m.created_at),
        "sent_at": _iso(m.sent_at),
        "delivery_status": m.delivery_status,
        "previous_versions": list(meta.get("history") or []),
        "raw_ref": meta.get("raw_ref"),
        "channel_meta": meta,
        "attachments": attachments,
    }


async def erase(
    session: AsyncSession,
    contact_id: int,
    *,
    now: datetime,
    agent_id: int | None,
    store: AttachmentStore | None = None,
    erasure_key: bytes | None = None,
) -> tuple[dict[str, int], set[str]]:
    """Erase a person's data (right to erasure). Returns what was touched (for the audit) and
    the local store files to delete once the transaction has committed (`delete_files`).

    Files held by a channel provider (Telegram file ids, recording URLs) are only unlinked.
    Given `erasure_key`, each identity leaves its salted hash (`ErasedIdentity`), so an audit
    can tell a later contact writing from it (`contacts.resolve_contact` marks it).
    """
    contact = await _contact(session, contact_id)
    ids = await merge_chain(session, contact.id)
    conv_ids = list(
        await session.scalars(select(Conversation.id).where(Conversation.contact_id.in_(ids)))
    )
    msg_ids = list(
        await session.scalars(select(Message.id).where(Message.conversation_id.in_(conv_ids)))
    )
    files = await _stored_files(session, msg_ids) if store is not None else set()
    # Undelivered replies must not go out after the person asked to be forgotten.
    await session.execute(
        update(OutboxItem)
        .where(OutboxItem.message_id.in_(msg_ids), OutboxItem.status.in_(("pending", "sending")))
        .values(status="dead", last_error="contact erased")
    )
    n_att = (
        await session.execute(delete(Attachment).where(Attachment.message_id.in_(msg_ids)))
    ).rowcount  # type: ignore[attr-defined]
    await session.execute(
        update(Message)
        .where(Message.id.in_(msg_ids))
        .values(text=ERASED, channel_meta={}, external_id=None)
    )
    closed = await _close_queue_work(session, ids, conv_ids, now)
    await session.execute(
        update(Conversation)
        .where(Conversation.id.in_(conv_ids))
        .values(subject=None, tags=[], routing_reasons=[], updated_at=now)
        .execution_options(synchronize_session="fetch")
    )
    await _scrub_reasons(session, ids, conv_ids)
    await session.execute(
        update(CallbackRequest)
        .where(CallbackRequest.contact_id.in_(ids) | CallbackRequest.conversation_id.in_(conv_ids))
        .values(phone=ERASED, note=None)
    )
    if erasure_key is not None:
        idents = (
            await session.execute(
                select(ContactIdentity.kind, ContactIdentity.value).where(
                    ContactIdentity.contact_id.in_(ids)
                )
            )
        ).all()
        session.add_all(
            ErasedIdentity(
                kind=kind,
                value_hash=contacts.identity_hash(erasure_key, kind, value),
                contact_id=contact.id,
                created_at=now,
            )
            for kind, value in idents
        )
    n_ident = (
        await session.execute(delete(ContactIdentity).where(ContactIdentity.contact_id.in_(ids)))
    ).rowcount  # type: ignore[attr-defined]
    await session.execute(
        update(Contact).where(Contact.id.in_(ids)).values(name=None, attributes={}, updated_at=now)
    )
    # The search index and the read audit (repo.search, repo.audit): no stems of the texts
    # stay; the audit keeps who read when, without the detail.
    await desk_search.forget(session, conv_ids, ids)
    await desk_audit.anonymise(session, ids)
    summary = {
        "files": len(files),
        "contacts": len(ids),
        "identities": int(n_ident or 0),
        "conversations": len(conv_ids),
        "messages": len(msg_ids),
        "attachments": int(n_att or 0),
        "closed_conversations": closed,
    }
    await events.record(
        session, "contact.erased", contact_id=contact.id, agent_id=agent_id, tier=2, data=summary
    )
    return summary, files


async def _close_queue_work(
    session: AsyncSession, ids: list[int], conv_ids: list[int], now: datetime
) -> int:
    """Nobody is left to answer: close the person's open conversations (unassigned, out of the
    queues), stop their SLA timers and crisis watches, cancel open callbacks. Returns how many
    conversations were closed."""
    convs = list(
        await session.scalars(
            select(Conversation).where(
                Conversation.id.in_(conv_ids), Conversation.status != "closed"
            )
        )
    )
    for conv in convs:
        previous = conv.status
        conv.status = "closed"
        conv.assignee_id = None
        conv.waiting_since = None
        conv.resolved_at = conv.resolved_at or now
        conv.updated_at = now
        await conv_event(
            session,
            "conversation.closed",
            conv,
            data={"from": previous, "to": "closed", "via": "erased"},
        )
    await session.execute(
        update(Assignment)
        .where(Assignment.conversation_id.in_(conv_ids), Assignment.ended_at.is_(None))
        .values(ended_at=now)
    )
    await session.execute(
        update(SlaTimer)
        .where(SlaTimer.conversation_id.in_(conv_ids))
        .values(state="stopped", next_fire_at=None, warn_at=None, remaining_s=None, updated_at=now)
    )
    await session.execute(
        update(CrisisWatch)
        .where(CrisisWatch.conversation_id.in_(conv_ids), CrisisWatch.state == "watching")
        .values(state="closed")
    )
    await session.execute(
        update(CallbackRequest)
        .where(
            CallbackRequest.contact_id.in_(ids) | CallbackRequest.conversation_id.in_(conv_ids),
            CallbackRequest.status == "open",
        )
        .values(
            status="cancelled",
            outcome="cancelled",
            next_attempt_at=None,
            closed_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    return len(convs)


# Free text in event payloads: agents' transfer, escalation and assignment reasons, and the
# routing reasons (which quote what the patient wrote).
_FREE_TEXT = {"reason": ERASED, "reasons": []}


async def _scrub_reasons(session: AsyncSession, ids: list[int], conv_ids: list[int]) -> None:
    """Keep the trail (which action, when, by whom, from and to which queue); drop the why."""
    await session.execute(
        update(Assignment).where(Assignment.conversation_id.in_(conv_ids)).values(reason=ERASED)
    )
    await events.write_pending(session)  # this transaction's own events too
    for ev in await session.scalars(
        select(Event).where(Event.contact_id.in_(ids) | Event.conversation_id.in_(conv_ids))
    ):
        data = dict(ev.data or {})
        if any(k in data for k in _FREE_TEXT):
            # A new dict, so the JSON column sees the change.
            ev.data = {**data, **{k: v for k, v in _FREE_TEXT.items() if k in data}}
    await session.flush()


def delete_files(store: AttachmentStore, refs: set[str]) -> None:
    for ref in refs:
        with contextlib.suppress(OSError, ValueError):
            store.path(ref).unlink()


async def _stored_files(session: AsyncSession, msg_ids: list[int]) -> set[str]:
    """The store files only these messages reference. The store is content-addressed, so one
    file can back another patient's attachment too (the same leaflet sent to both): a file
    another attachment row still references stays."""
    refs = set(
        await session.scalars(select(Attachment.url).where(Attachment.message_id.in_(msg_ids)))
    )
    for meta in await session.scalars(select(Message.channel_meta).where(Message.id.in_(msg_ids))):
        raw = (meta or {}).get("raw_ref")
        if isinstance(raw, str):
            refs.add(raw)
    refs = {r for r in refs if AttachmentStore.owns(r)}
    if not refs:
        return refs
    shared = set(
        await session.scalars(
            select(Attachment.url).where(
                Attachment.url.in_(refs), Attachment.message_id.not_in(msg_ids)
            )
        )
    )
    return refs - shared
