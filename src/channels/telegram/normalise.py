"""Pure: a Telegram `Update` (parsed by aiogram) in, one action out. No I/O, no clock.

Only private chats with a person are customer conversations; groups, channels, bots and
update types we did not ask for become `Ignored` (acknowledged, never a 500).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiogram.types import (
    CallbackQuery,
    MessageEntity,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
    Update,
    User,
)
from aiogram.types import Message as TgMessage

from channels import phones
from models.messages import AttachmentRef, InboundMessage, Sender

# Attachment URLs are references, never bytes: the agent API resolves them through getFile.
FILE_URL_PREFIX = "telegram:file/"
CSAT_PREFIX = "csat"
_CSAT_DATA = re.compile(r"^csat:(\d{1,18}):([1-5])$")
_START = re.compile(r"^/start(?:@\w+)?(?=\s|$)\s*(\S*)")


@dataclass(frozen=True)
class NewMessage:
    """A customer message to ingest."""

    update_id: int
    user_id: int
    message: InboundMessage


@dataclass(frozen=True)
class Start:
    """`/start` or `/start <payload>` (a deep link): greet, maybe link an app account."""

    update_id: int
    user_id: int
    chat_id: int
    sender: Sender
    payload: str | None
    language: str | None


@dataclass(frozen=True)
class Edit:
    """An edited message; `original` is used when the first version never reached us."""

    update_id: int
    user_id: int
    external_id: str
    text: str
    edited_at: datetime
    original: InboundMessage


@dataclass(frozen=True)
class CallbackAnswer:
    """An inline button press. `conversation_id`/`score` are set for our rating buttons."""

    update_id: int
    callback_id: str
    user_id: int
    conversation_id: int | None
    score: int | None


@dataclass(frozen=True)
class Ignored:
    update_id: int
    reason: str


TelegramAction = NewMessage | Start | Edit | CallbackAnswer | Ignored


def external_id(chat_id: int, message_id: int) -> str:
    """Telegram message ids are unique per chat only, so the chat is part of the key."""
    return f"{chat_id}:{message_id}"


def csat_data(conversation_id: int, score: int) -> str:
    return f"{CSAT_PREFIX}:{conversation_id}:{score}"


def normalise(update: Update, *, now: datetime, region: str) -> TelegramAction:
    """Map one update. `now` is the received time; `region` reads national phone numbers."""
    uid = update.update_id
    if update.message is not None:
        return _message(uid, update.message, now=now, region=region)
    if update.edited_message is not None:
        found = _message(uid, update.edited_message, now=now, region=region)
        if not isinstance(found, NewMessage):
            return found if isinstance(found, Ignored) else Ignored(uid, "edited command")
        msg = update.edited_message
        # Unlike `date`, aiogram types `edit_date` as the raw unix time.
        edited_at = datetime.fromtimestamp(msg.edit_date, UTC) if msg.edit_date else now
        return Edit(
            update_id=uid,
            user_id=found.user_id,
            external_id=found.message.external_id,
            text=found.message.text,
            edited_at=edited_at,
            original=found.message,
        )
    if update.callback_query is not None:
        return _callback(uid, update.callback_query)
    return Ignored(uid, "update type not handled")


def _callback(uid: int, cq: CallbackQuery) -> CallbackAnswer | Ignored:
    if cq.from_user.is_bot:
        return Ignored(uid, "callback from a bot")
    m = _CSAT_DATA.match(cq.data or "")
    return CallbackAnswer(
        update_id=uid,
        callback_id=cq.id,
        user_id=cq.from_user.id,
        conversation_id=int(m.group(1)) if m else None,
        score=int(m.group(2)) if m else None,
    )


def _message(uid: int, msg: TgMessage, *, now: datetime, region: str) -> TelegramAction:
    if msg.chat.type != "private":
        return Ignored(uid, f"{msg.chat.type} chat")
    user = msg.from_user
    if user is None or user.is_bot:
        return Ignored(uid, "not from a person")

    text = msg.text if msg.text is not None else (msg.caption or "")
    start = _START.match(msg.text or "")
    sender = _sender(user, msg, region)
    if start is not None:
        return Start(
            update_id=uid,
            user_id=user.id,
            chat_id=msg.chat.id,
            sender=sender,
            payload=start.group(1) or None,
            language=user.language_code,
        )

    attachments, extra = _attachments(msg, region)
    if not text.strip() and not attachments:
        return Ignored(uid, f"unsupported content: {msg.content_type}")

    meta: dict[str, Any] = {"update_id": uid, "chat_id": msg.chat.id, "message_id": msg.message_id}
    meta.update(extra)
    if user.language_code:
        meta["language_code"] = user.language_code
    entities = msg.entities if msg.text is not None else msg.caption_entities
    if entities:
        # Offsets are in UTF-16 units of the raw text, which is stored as sent.
        meta["entities"] = [_entity(e) for e in entities]
    if msg.forward_origin is not None:
        meta["forwarded"] = _origin(msg.forward_origin)
    if msg.media_group_id:
        meta["media_group_id"] = msg.media_group_id
    refs: tuple[str, ...] = ()
    if msg.reply_to_message is not None:
        refs = (external_id(msg.chat.id, msg.reply_to_message.message_id),)
        meta["reply_to"] = refs[0]

    return NewMessage(
        update_id=uid,
        user_id=user.id,
        message=InboundMessage(
            channel="telegram",
            external_id=external_id(msg.chat.id, msg.message_id),
            sender=sender,
            text=text,
            attachments=tuple(attachments),
            received_at=now,
            sent_at=_utc(msg.date),
            thread_refs=refs,
            channel_meta=meta,
        ),
    )


def _sender(user: User, msg: TgMessage, region: str) -> Sender:
    """The sender; a shared contact card is a verified phone only when it is the sender's
    own (Telegram sets `user_id` from the account, the client cannot forge it). Somebody
    else's card is just an attachment: it says nothing about who is writing."""
    phone = None
    if msg.contact is not None and msg.contact.user_id == user.id:
        phone = e164(msg.contact.phone_number, region)
    return Sender(
        external_id=str(user.id),
        name=user.full_name[:200] or None,
        phone=phone,
        phone_verified=phone is not None,
    )


def _file(kind: str, file_id: str, **fields: Any) -> AttachmentRef:
    meta = {k: v for k, v in fields.pop("meta", {}).items() if v is not None}
    return AttachmentRef(kind=kind, url=FILE_URL_PREFIX + file_id, meta=meta, **fields)


def _attachments(msg: TgMessage, region: str) -> tuple[list[AttachmentRef], dict[str, Any]]:
    out: list[AttachmentRef] = []
    extra: dict[str, Any] = {}
    if msg.photo:
        p = msg.photo[-1]  # Telegram lists sizes smallest first
        out.append(
            _file(
                "image",
                p.file_id,
                mime="image/jpeg",
                size=p.file_size,
                meta={"file_unique_id": p.file_unique_id, "width": p.width, "height": p.height},
            )
        )
    if msg.animation is not None:  # an animation also arrives as `document`: take it once
        a = msg.animation
        out.append(
            _file(
                "animation",
                a.file_id,
                mime=a.mime_type or "video/mp4",
                size=a.file_size,
                name=a.file_name,
                meta={"file_unique_id": a.file_unique_id, "duration": a.duration},
            )
        )
    elif msg.document is not None:
        d = msg.document
        out.append(
            _file(
                "file",
                d.file_id,
                mime=d.mime_type,
                size=d.file_size,
                name=d.file_name,
                meta={"file_unique_id": d.file_unique_id},
            )
        )
    if msg.voice is not None:
        v = msg.voice
        out.append(
            _file(
                "voice",
                v.file_id,
                mime=v.mime_type or "audio/ogg",
                size=v.file_size,
                meta={"file_unique_id": v.file_unique_id, "duration": v.duration},
            )
        )
    if msg.audio is not None:
        au = msg.audio
        out.append(
            _file(
                "audio",
                au.file_id,
                mime=au.mime_type,
                size=au.file_size,
                name=au.file_name,
                meta={
                    "file_unique_id": au.file_unique_id,
                    "duration": au.duration,
                    "title": au.title,
                    "performer": au.performer,
                },
            )
        )
    if msg.video is not None:
        vi = msg.video
        out.append(
            _file(
                "video",
                vi.file_id,
                mime=vi.mime_type or "video/mp4",
                size=vi.file_size,
                name=vi.file_name,
                meta={
                    "file_unique_id": vi.file_unique_id,
                    "duration": vi.duration,
                    "width": vi.width,
                    "height": vi.height,
                },
            )
        )
    if msg.video_note is not None:
        vn = msg.video_note
        out.append(
            _file(
                "video_note",
                vn.file_id,
                mime="video/mp4",
                size=vn.file_size,
                meta={"file_unique_id": vn.file_unique_id, "duration": vn.duration},
            )
        )
    if msg.sticker is not None:
        s = msg.sticker
        mime = (
            "application/x-tgsticker"
            if s.is_animated
            else ("video/webm" if s.is_video else "image/webp")
        )
        out.append(
            _file(
                "sticker",
                s.file_id,
                mime=mime,
                size=s.file_size,
                meta={"file_unique_id": s.file_unique_id, "emoji": s.emoji, "set": s.set_name},
            )
        )
    if msg.location is not None:
        loc = msg.location
        venue = msg.venue
        extra["location"] = {"latitude": loc.latitude, "longitude": loc.longitude}
        out.append(
            AttachmentRef(
                kind="location",
                url=f"geo:{loc.latitude},{loc.longitude}",
                name=venue.title if venue is not None else None,
                meta={"address": venue.address} if venue is not None else {},
            )
        )
    if msg.contact is not None:
        c = msg.contact
        own = msg.from_user is not None and c.user_id == msg.from_user.id
        number = e164(c.phone_number, region)
        extra["contact"] = {"own": own, "phone": number}
        out.append(
            AttachmentRef(
                kind="contact",
                url=f"tel:{number or c.phone_number}",
                name=" ".join(x for x in (c.first_name, c.last_name) if x)[:300] or None,
                meta={"own": own},
            )
        )
    return out, extra


def _entity(e: MessageEntity) -> dict[str, Any]:
    out: dict[str, Any] = {"type": e.type, "offset": e.offset, "length": e.length}
    if e.url:
        out["url"] = e.url
    return out


def _origin(
    origin: MessageOriginUser | MessageOriginHiddenUser | MessageOriginChat | MessageOriginChannel,
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": origin.type, "date": _utc(origin.date).isoformat()}
    if isinstance(origin, MessageOriginUser):
        out["name"] = origin.sender_user.full_name
    elif isinstance(origin, MessageOriginHiddenUser):
        out["name"] = origin.sender_user_name
    elif isinstance(origin, MessageOriginChat):
        out["name"] = origin.sender_chat.title
    else:
        out["name"] = origin.chat.title
    return out


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)


def e164(raw: str | None, region: str) -> str | None:
    """Telegram sends shared numbers in international form, often without the leading `+`."""
    return phones.e164(raw, region, bare_digits_international=True)
