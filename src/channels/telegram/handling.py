"""Apply one Telegram update inside the caller's unit of work; shared by webhook and polling.

`handle_update` only writes to the database and returns the Bot API calls to make *after*
the commit (`Effect`s: the greeting, answering a button press), so nothing reaches the
customer for an update that was not stored. Replies to messages go through the outbox.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram.types import Update
from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import DeliveryError
from channels.signing import legacy_secret, link_key
from channels.telegram.adapter import TelegramChannel, parse_markup
from channels.telegram.link import verify_link_token
from channels.telegram.normalise import (
    CallbackAnswer,
    Edit,
    Ignored,
    NewMessage,
    Start,
    csat_data,
    normalise,
)
from models import Contact, ContactIdentity, Conversation, Message
from models.messages import Sender
from models.vocab import ACTIVE_STATUSES
from router.flows import route as routing
from router.flows import satisfaction
from router.flows.contacts import merge_contacts, resolve_contact
from router.flows.ingest import ahead as ingest_ahead
from router.flows.ingest import ingest
from router.flows.outbound import send_crisis_ack
from router.group import ReadAhead
from router.repo import batch, events
from router.repo.events import conv_event
from router.runtime import Runtime

log = logging.getLogger(__name__)

# Small fixed texts the policy file does not carry yet (policy has greeting/ack/crisis_ack).
_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "share_phone": "Share my phone number",
        "rate": "How would you rate the help you received? (1 = poor, 5 = excellent)",
        "thanks": "Thank you for your rating!",
    },
    "es": {
        "share_phone": "Compartir mi número de teléfono",
        "rate": "¿Cómo valorarías la ayuda recibida? (1 = mala, 5 = excelente)",
        "thanks": "¡Gracias por tu valoración!",
    },
    "ru": {
        "share_phone": "Поделиться номером телефона",
        "rate": "Как вы оцениваете полученную помощь? (1 — плохо, 5 — отлично)",
        "thanks": "Спасибо за оценку!",
    },
}


def text_for(key: str, language: str | None) -> str:
    lang = (language or "en").lower().replace("_", "-").split("-")[0]
    return _TEXTS.get(lang, _TEXTS["en"])[key]


def share_phone_keyboard(language: str | None) -> dict[str, Any]:
    """A one-time reply keyboard whose button sends the user's own contact card."""
    button = {"text": text_for("share_phone", language), "request_contact": True}
    return {"keyboard": [[button]], "resize_keyboard": True, "one_time_keyboard": True}


def rating_keyboard(conversation_id: int) -> dict[str, Any]:
    row = [{"text": str(n), "callback_data": csat_data(conversation_id, n)} for n in range(1, 6)]
    return {"inline_keyboard": [row]}


@dataclass(frozen=True)
class Greet:
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None = None


@dataclass(frozen=True)
class AnswerCallback:
    callback_id: str
    text: str | None = None


Effect = Greet | AnswerCallback


@dataclass(frozen=True)
class Handled:
    update_id: int
    effects: tuple[Effect, ...] = ()
    outcome: str = "stored"


def ahead(rt: Runtime, upd: Update) -> ReadAhead | None:
    """What a group commit reads ahead for this update: its sender's identity and live
    conversation (a shared phone card, if any, is then looked up by the unit itself)."""
    for m in (upd.message, upd.edited_message):
        if m is not None and m.from_user is not None and not m.from_user.is_bot:
            return ingest_ahead(rt, "telegram", Sender(external_id=str(m.from_user.id)))
    return None


async def handle_update(session: AsyncSession, rt: Runtime, upd: Update) -> Handled:
    action = normalise(upd, now=rt.now(), region=rt.settings.default_region)
    if isinstance(action, Ignored):
        log.debug(
            "telegram update ignored", extra={"update_id": upd.update_id, "why": action.reason}
        )
        return Handled(upd.update_id, outcome="ignored")
    if isinstance(action, NewMessage):
        await _reachable_again(session, action.user_id)
        res = await ingest(session, rt, action.message)
        return Handled(action.update_id, outcome="duplicate" if res.duplicate else "stored")
    if isinstance(action, Edit):
        await _reachable_again(session, action.user_id)
        return await _edit(session, rt, action)
    if isinstance(action, Start):
        await _reachable_again(session, action.user_id)
        return await _start(session, rt, action)
    return await _rating(session, rt, action)


async def run_effects(channel: TelegramChannel, handled: Handled) -> None:
    """Make the after-commit calls; a failure is logged, never raised (the update is stored
    and Telegram must not redeliver it)."""
    if not handled.effects or not channel.recent.first_time(handled.update_id):
        return
    for eff in handled.effects:
        try:
            if isinstance(eff, Greet):
                await channel.send_text(eff.chat_id, eff.text, parse_markup(eff.reply_markup))
            else:
                await channel.answer_callback(eff.callback_id, eff.text)
        except DeliveryError as exc:
            log.warning(
                "telegram call after update failed",
                extra={
                    "update_id": handled.update_id,
                    "call": type(eff).__name__,
                    "why": exc.reason,
                },
            )


async def _reachable_again(session: AsyncSession, user_id: int) -> None:
    """A user who writes has unblocked the bot: replies may flow again."""
    snap = batch.active(session)
    key = ("telegram", str(user_id))
    if snap is not None and key in snap.identities:
        # Read ahead for the batch: no UPDATE unless the identity is marked unreachable.
        ident = snap.identities[key]
        if ident is not None and ident.unreachable:
            ident.unreachable = False
        return
    await session.execute(
        update(ContactIdentity)
        .where(
            ContactIdentity.kind == "telegram",
            ContactIdentity.value == str(user_id),
            ContactIdentity.unreachable.is_(True),
        )
        .values(unreachable=False)
    )


async def _edit(session: AsyncSession, rt: Runtime, action: Edit) -> Handled:
    msg = await session.scalar(
        select(Message).where(
            Message.channel == "telegram", Message.external_id == action.external_id
        )
    )
    if msg is None:
        # The first version never reached us (sent before the bot was set up, or lost):
        # the edited text is all there is, so store it as the message.
        res = await ingest(session, rt, action.original)
        return Handled(action.update_id, outcome="duplicate" if res.duplicate else "stored")
    meta = dict(msg.channel_meta or {})
    history = list(meta.get("history", []))
    if msg.text == action.text or any(h.get("update_id") == action.update_id for h in history):
        return Handled(action.update_id, outcome="duplicate")
    history.append(
        {"text": msg.text, "edited_at": action.edited_at.isoformat(), "update_id": action.update_id}
    )
    msg.text = action.text
    # A new dict, so the JSON column sees the change.
    msg.channel_meta = {**meta, "history": history}
    await session.flush()
    conv = await session.get(Conversation, msg.conversation_id)
    if conv is None:
        return Handled(action.update_id)
    await conv_event(
        session, "message.edited", conv, data={"message_id": msg.id, "channel": "telegram"}
    )
    if conv.status in ACTIVE_STATUSES:
        # An edit can add what routing looks for ("...and I want to end it"): route the new
        # text again; routing only ever raises a conversation, never lowers it.
        contact = await session.get(Contact, conv.contact_id)
        if contact is not None:
            now = rt.now()
            decision = await routing.route(session, rt, conv, contact, [msg], now)
            if decision.crisis:
                await send_crisis_ack(session, rt, conv, now)
    return Handled(action.update_id)


async def _start(session: AsyncSession, rt: Runtime, action: Start) -> Handled:
    now = rt.now()
    contact = await resolve_contact(
        session, "telegram", action.sender, now, erasure_key=rt.settings.erasure_hmac_key()
    )
    if action.payload:
        # The link key; during the transition also tokens minted with WEBHOOK_SECRET itself.
        keys = [k for k in (link_key(rt.settings), legacy_secret(rt.settings)) if k]
        app_id = next(
            (a for k in keys if (a := verify_link_token(k, action.payload, now=now))), None
        )
        if app_id is None:
            log.info("telegram deep link rejected", extra={"update_id": action.update_id})
        else:
            contact = await link_app_account(session, contact, app_id, now)
    has_phone = await session.scalar(
        select(
            exists().where(
                ContactIdentity.contact_id == contact.id,
                ContactIdentity.kind == "phone",
                ContactIdentity.verified.is_(True),
            )
        )
    )
    greet = Greet(
        chat_id=action.chat_id,
        text=rt.policy.greeting_text(action.language),
        # Ask for the phone only when we don't have a verified one yet.
        reply_markup=None if has_phone else share_phone_keyboard(action.language),
    )
    return Handled(action.update_id, (greet,))


async def link_app_account(
    session: AsyncSession, tg_contact: Contact, app_external_id: str, now: datetime
) -> Contact:
    """Join the Telegram user's contact with the app user a verified deep link names: the
    app's contact survives (the merge keeps its history); a not-yet-known app user gets the
    app identity on this contact, so their first app message lands here."""
    ident = await session.scalar(
        select(ContactIdentity).where(
            ContactIdentity.kind == "app", ContactIdentity.value == app_external_id
        )
    )
    if ident is None:
        session.add(
            ContactIdentity(
                contact_id=tg_contact.id, kind="app", value=app_external_id, verified=True
            )
        )
        await session.flush()
        await events.record(
            session, "contact.linked", contact_id=tg_contact.id, data={"via": "telegram_start"}
        )
        return tg_contact
    if ident.contact_id == tg_contact.id:
        return tg_contact
    app_contact = await session.get(Contact, ident.contact_id)
    if app_contact is None:  # identities always point at a live contact; be defensive
        return tg_contact
    return await merge_contacts(
        session, keep=app_contact, other=tg_contact, now=now, reason="telegram deep link"
    )


async def _rating(session: AsyncSession, rt: Runtime, action: CallbackAnswer) -> Handled:
    plain = Handled(action.update_id, (AnswerCallback(action.callback_id),), outcome="ignored")
    if action.conversation_id is None or action.score is None:
        return plain
    conv = await session.get(Conversation, action.conversation_id)
    owner = await session.scalar(
        select(ContactIdentity.contact_id).where(
            ContactIdentity.kind == "telegram", ContactIdentity.value == str(action.user_id)
        )
    )
    # Callback data comes from the client: only the conversation's own customer may rate it.
    if conv is None or owner is None or owner != conv.contact_id:
        log.info("telegram rating refused", extra={"update_id": action.update_id})
        return plain
    thanks = AnswerCallback(action.callback_id, text_for("thanks", conv.language))
    rated = await satisfaction.record(
        session, rt, conv, action.score, channel="telegram", data={"update_id": action.update_id}
    )
    outcome = "duplicate" if rated.duplicate else "stored"
    return Handled(action.update_id, (thanks,), outcome=outcome)


async def ask_rating(session: AsyncSession, rt: Runtime, conv: Conversation) -> Message | None:
    """Queue the 1–5 rating question with inline buttons, for the resolve flow to call.

    Only when the conversation replies on Telegram, Telegram is configured, the customer is
    reachable there and `decide.satisfaction` says to ask (once per conversation, not after
    a crisis unless the policy says so). Returns the queued message, or None.
    """
    return await satisfaction.ask(
        session,
        rt,
        conv,
        "telegram",
        text_for("rate", conv.language),
        meta={"reply_markup": rating_keyboard(conv.id)},
    )
