"""Health data rights: export everything held about a person; erase it on request.

Erasure keeps the shape of the history (conversations, message rows, events) so audits and
statistics stay true, but removes what identifies or describes the person: names, identities,
message text, channel metadata, attachments, callback numbers. Undelivered replies die.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.email.store import AttachmentStore
from models import (
    Attachment,
    CallbackRequest,
    Contact,
    ContactIdentity,
    Conversation,
    Event,
    Message,
    OutboxItem,
)
from router import events
from router.errors import Conflict, NotFound

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


async def export(session: AsyncSession, contact_id: int) -> dict[str, Any]:
    """Everything held about one person, as plain JSON (subject access request)."""
    contact = await _contact(session, contact_id)
    merged = list(
        await session.scalars(select(Contact.id).where(Contact.merged_into_id == contact.id))
    )
    idents = await session.scalars(
        select(ContactIdentity).where(ContactIdentity.contact_id == contact.id)
    )
    convs = list(
        await session.scalars(
            select(Conversation)
            .where(Conversation.contact_id == contact.id)
            .order_by(Conversation.id)
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
    evs = await session.scalars(
        select(Event)
        .where((Event.contact_id == contact.id) | Event.conversation_id.in_(conv_ids))
        .order_by(Event.id)
    )
    return {
        "contact": {
            "id": contact.id,
            "name": contact.name,
            "attributes": contact.attributes,
            "created_at": _iso(contact.created_at),
            "merged_contact_ids": merged,
        },
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
                "language": c.language,
                "subject": c.subject,
                "created_at": _iso(c.created_at),
                "resolved_at": _iso(c.resolved_at),
                "csat": c.csat,
                "messages": [
                    {
                        "id": m.id,
                        "direction": m.direction,
                        "channel": m.channel,
                        "kind": m.kind,
                        "text": m.text,
                        "created_at": _iso(m.created_at),
                        "delivery_status": m.delivery_status,
                        "attachments": atts.get(m.id, []),
                    }
                    for m in msgs
                    if m.conversation_id == c.id and m.direction != "note"
                ],
            }
            for c in convs
        ],
        "events": [
            {
                "id": e.id,
                "type": e.type,
                "conversation_id": e.conversation_id,
                "created_at": _iso(e.created_at),
            }
            for e in evs
        ],
    }


async def erase(
    session: AsyncSession,
    contact_id: int,
    *,
    now: datetime,
    agent_id: int | None,
    store: AttachmentStore | None = None,
) -> tuple[dict[str, int], set[str]]:
    """Erase a person's data (right to erasure). Returns what was touched (for the audit) and
    the local store files to delete once the transaction has committed (`delete_files`).

    Files held by a channel provider (Telegram file ids, recording URLs) are only unlinked.
    """
    contact = await _contact(session, contact_id)
    ids = [
        contact.id,
        *await session.scalars(select(Contact.id).where(Contact.merged_into_id == contact.id)),
    ]
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
    await session.execute(
        update(Conversation)
        .where(Conversation.id.in_(conv_ids))
        .values(subject=None, routing_reasons=[ERASED], updated_at=now)
    )
    await session.execute(
        update(CallbackRequest)
        .where(CallbackRequest.contact_id.in_(ids))
        .values(phone=ERASED, note=None)
    )
    n_ident = (
        await session.execute(delete(ContactIdentity).where(ContactIdentity.contact_id.in_(ids)))
    ).rowcount  # type: ignore[attr-defined]
    await session.execute(
        update(Contact).where(Contact.id.in_(ids)).values(name=None, attributes={}, updated_at=now)
    )
    summary = {
        "files": len(files),
        "contacts": len(ids),
        "identities": int(n_ident or 0),
        "conversations": len(conv_ids),
        "messages": len(msg_ids),
        "attachments": int(n_att or 0),
    }
    await events.record(
        session, "contact.erased", contact_id=contact.id, agent_id=agent_id, tier=2, data=summary
    )
    return summary, files


def delete_files(store: AttachmentStore, refs: set[str]) -> None:
    for ref in refs:
        with contextlib.suppress(OSError, ValueError):
            store.path(ref).unlink()


async def _stored_files(session: AsyncSession, msg_ids: list[int]) -> set[str]:
    refs = set(
        await session.scalars(select(Attachment.url).where(Attachment.message_id.in_(msg_ids)))
    )
    for meta in await session.scalars(select(Message.channel_meta).where(Message.id.in_(msg_ids))):
        raw = (meta or {}).get("raw_ref")
        if isinstance(raw, str):
            refs.add(raw)
    return {r for r in refs if AttachmentStore.owns(r)}
