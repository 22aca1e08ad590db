"""HTTP side of the Telegram channel: the webhook. (Agents download Telegram files through
the generic attachment route: the adapter is a `FileSource`.)"""

from __future__ import annotations

import logging
from typing import Annotated

from aiogram.types import Update
from fastapi import APIRouter, BackgroundTasks, Depends, Request
from pydantic import BaseModel, ValidationError

from channels.signing import configured, verify_token
from channels.telegram.adapter import TelegramChannel
from channels.telegram.handling import Handled, ahead, handle_update, run_effects
from router.api.deps import RuntimeDep, SessionDep
from router.errors import NotFound
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
    # Group commit with concurrent deliveries; in a savepoint, so a failure is this update's.
    handled: Handled = await rt.group.run(
        session, lambda s: handle_update(s, rt, upd), key=_sender_key(upd), ahead=ahead(rt, upd)
    )
    if handled.effects:
        background.add_task(run_effects, channel, handled)
    return WebhookAck(outcome=handled.outcome)


def _sender_key(upd: Update) -> str:
    """One Telegram user's updates keep their order in a group commit."""
    for m in (upd.message, upd.edited_message):
        if m is not None and m.from_user is not None:
            return f"telegram:{m.from_user.id}"
    if upd.callback_query is not None:
        return f"telegram:{upd.callback_query.from_user.id}"
    return "telegram:"
