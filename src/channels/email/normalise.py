"""`ParsedEmail` → `InboundMessage`. Pure: the caller supplies store references, the thread
references it resolved and the receive time."""

from __future__ import annotations

from datetime import datetime

from channels.email.auth import UNVERIFIED, Verdict
from channels.email.parse import ParsedEmail, Part
from models.messages import AttachmentRef, InboundMessage, Sender, received

MAX_FULL_TEXT = 100_000


def attachment_ref(part: Part, ref: str) -> AttachmentRef:
    meta: dict[str, object] = {}
    if part.inline:
        meta["inline"] = True
    if part.content_id:
        meta["content_id"] = part.content_id
    return AttachmentRef(
        kind="image" if part.mime.startswith("image/") else "file",
        url=ref,
        mime=part.mime[:200],
        size=len(part.data),
        name=part.name,
        meta=meta,
    )


def to_inbound(
    parsed: ParsedEmail,
    *,
    received_at: datetime,
    thread_refs: tuple[str, ...],
    attachments: tuple[AttachmentRef, ...],
    raw_ref: str | None,
    verdict: Verdict | None = None,
    external_id: str | None = None,
    message_id_reused: bool = False,
) -> InboundMessage:
    """Unauthenticated mail (`verdict` not authenticated) is from "unverified:<address>": an
    identity of its own that owns nothing and merges with nobody, threaded only by
    `thread_refs`; `channel_meta.sender_verified` tells agents."""
    authentic = verdict is None or verdict.authenticated
    meta: dict[str, object] = {
        "sender_verified": authentic,
        "in_reply_to": list(parsed.in_reply_to),
        "references": list(parsed.references),
        "headers": parsed.headers,
    }
    if raw_ref:
        meta["raw_ref"] = raw_ref  # the original message, byte for byte, in the file store
    if parsed.text_full != parsed.text:
        meta["full_text"] = parsed.text_full[:MAX_FULL_TEXT]
    if verdict is not None and verdict.method:
        meta["sender_auth"] = verdict.method  # dmarc | dkim | spf | from (not required)
    if parsed.content_hash:
        meta["content_hash"] = parsed.content_hash
    if message_id_reused:
        # Another mail already had this Message-ID: kept apart, flagged for agents.
        meta["message_id_reused"] = True
        meta["message_id"] = parsed.message_id
    if parsed.message_id_derived:
        meta["message_id_derived"] = True
    if parsed.html_only:
        meta["html_only"] = True
    if parsed.defects:
        meta["defects"] = parsed.defects
    return InboundMessage(
        channel="email",
        external_id=external_id or parsed.message_id,
        sender=Sender(
            external_id=parsed.from_addr if authentic else UNVERIFIED + parsed.from_addr,
            name=parsed.from_name,
        ),
        text=parsed.text,
        attachments=attachments,
        received_at=received(received_at),
        sent_at=parsed.date,
        thread_refs=thread_refs,
        thread_refs_only=not authentic,
        subject=parsed.subject,
        channel_meta=meta,
    )
