"""HTTP side of the Telegram channel: the webhook, and file download for agents."""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import quote

from aiogram.types import Update
from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError

from channels.signing import configured, verify_token
from channels.telegram.adapter import FileUnavailable, TelegramChannel
from channels.telegram.handling import handle_update, run_effects
from channels.telegram.normalise import FILE_URL_PREFIX
from models import Attachment, Message
from router import service
from router.api.deps import AgentDep, IdPath, RuntimeDep, SessionDep
from router.errors import ConversationNotFound, NotFound, Unavailable
from router.runtime import Runtime

log = logging.getLogger(__name__)

api_router = APIRouter(tags=["telegram"])
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookAck(BaseModel):
    ok: bool = True
    outcome: str


def telegram_channel(rt: Runtime) -> TelegramChannel:
    """The configured adapter, or 404: without a bot token there is no Telegram channel."""
    configured(rt.settings.telegram_bot_token, "telegram")
    channel = rt.channels.get("telegram")
    if not isinstance(channel, TelegramChannel):
        raise NotFound("the telegram channel is not configured")
    return channel


def verified_channel(request: Request, rt: RuntimeDep) -> TelegramChannel:
    """Authenticity first, before a database session is opened for the request."""
    secret = configured(rt.settings.telegram_webhook_secret, "telegram")
    channel = telegram_channel(rt)
    verify_token(secret, request.headers.get(SECRET_HEADER), SECRET_HEADER)
    return channel


@api_router.post("/webhooks/telegram", response_model=WebhookAck)
async def telegram_webhook(
    request: Request,
    channel: Annotated[TelegramChannel, Depends(verified_channel)],
    rt: RuntimeDep,
    session: SessionDep,
    background: BackgroundTasks,
) -> WebhookAck:
    """One Bot API `Update`. Answers 200 once the update is stored (or ignored); a redelivery
    changes nothing. The greeting and button answers go out after the commit."""
    body = await request.body()
    try:
        upd = Update.model_validate_json(body)
    except ValidationError:
        # It carried our secret, so it is Telegram: answering an error would only make it
        # redeliver the same body forever. Nothing of it is logged.
        log.warning("telegram webhook body is not a valid Update")
        return WebhookAck(outcome="invalid")
    handled = await handle_update(session, rt, upd)
    if handled.effects:
        background.add_task(run_effects, channel, handled)
    return WebhookAck(outcome=handled.outcome)


@api_router.get(
    "/api/v1/attachments/{attachment_id}/content",
    response_class=StreamingResponse,
    tags=["conversations"],
)
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
        await service.get_conversation(session, p, msg.conversation_id)
    except ConversationNotFound as exc:
        # The same answer as a missing id: never confirm the file exists, nor whose it is.
        raise NotFound(f"attachment {attachment_id} not found") from exc
    if msg.channel != "telegram" or not att.url.startswith(FILE_URL_PREFIX):
        raise NotFound(f"attachment {attachment_id} has no downloadable content")
    channel = telegram_channel(rt)
    try:
        stream = await channel.open_file(att.url.removeprefix(FILE_URL_PREFIX))
    except FileUnavailable as exc:
        if exc.retryable:
            raise Unavailable("telegram is unreachable; retry later") from None
        raise NotFound(f"attachment {attachment_id} is no longer available") from None
    name = att.name or f"telegram-{att.kind}-{att.id}"
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
