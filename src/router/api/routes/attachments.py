"""Customers' files, for agents: streamed from the channel that holds them (never stored
here). Any channel whose adapter is a `FileSource` serves its own attachments."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from channels.base import FileSource, FileUnavailable
from models import Attachment, Message
from router.api.deps import AgentDep, IdPath, RuntimeDep, SessionDep
from router.errors import ConversationNotFound, NotFound, Unavailable
from router.repo import access

api_router = APIRouter(prefix="/api/v1/attachments", tags=["conversations"])


@api_router.get("/{attachment_id}/content", response_class=StreamingResponse)
async def attachment_content(
    attachment_id: IdPath, p: AgentDep, rt: RuntimeDep, session: SessionDep
) -> StreamingResponse:
    """The bytes of a customer's file, streamed from the channel (never stored here).
    Only for agents who may read the conversation; anything else is 404."""
    att = await session.get(Attachment, attachment_id)
    msg = await session.get(Message, att.message_id) if att is not None else None
    if att is None or msg is None:
        raise NotFound(f"attachment {attachment_id} not found")
    try:
        await access.get_conversation(session, p, msg.conversation_id)
    except ConversationNotFound as exc:
        # The same answer as a missing id: never confirm the file exists, nor whose it is.
        raise NotFound(f"attachment {attachment_id} not found") from exc
    source = rt.channels.get(msg.channel)
    if not isinstance(source, FileSource) or not source.opens(att.url):
        raise NotFound(f"attachment {attachment_id} has no downloadable content")
    try:
        stream = await source.open_attachment(att.url)
    except FileUnavailable as exc:
        if exc.retryable:
            raise Unavailable(f"{msg.channel} is unreachable; retry later") from None
        raise NotFound(f"attachment {attachment_id} is no longer available") from None
    name = att.name or f"{msg.channel}-{att.kind}-{att.id}"
    headers = {
        # Customer files are untrusted: download, never render on our origin.
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(
        stream, media_type=att.mime or "application/octet-stream", headers=headers
    )
