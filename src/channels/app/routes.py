"""The `app` channel: mobile/web apps post customer messages here."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exists, select

from channels.app import normalise as app_channel
from channels.phones import e164
from models import ContactIdentity, Conversation, Message
from models.schemas import MAX_ID, InboundResult, MessageRead, Page
from router.api.deps import IntegrationDep, RuntimeDep, SessionDep
from router.errors import Conflict, NotFound
from router.flows import ingest, satisfaction
from router.read import conversations as reads

api_router = APIRouter(prefix="/api/v1", tags=["app channel"])


@api_router.post("/inbound", response_model=InboundResult)
async def inbound(
    body: app_channel.AppInbound, _p: IntegrationDep, rt: RuntimeDep, session: SessionDep
) -> InboundResult:
    """Store one app message (idempotent on `message.external_id`); answers once durable."""
    msg = app_channel.normalise(
        body, now=rt.now(), phone=e164(body.contact.phone, rt.settings.default_region)
    )
    # Group commit: written with concurrent deliveries, answered once its own data is durable.
    res: ingest.IngestResult = await rt.group.run(
        session,
        lambda s: ingest.ingest(s, rt, msg),
        key=f"{msg.channel}:{msg.sender.external_id}",
        isolated=True,
        ahead=ingest.ahead(rt, msg.channel, msg.sender, msg.external_id),
    )
    return InboundResult(
        conversation_id=res.conversation_id, message_id=res.message_id, duplicate=res.duplicate
    )


@api_router.get("/inbound/messages", response_model=Page[MessageRead])
async def pull_replies(
    _p: IntegrationDep,
    session: SessionDep,
    contact_external_id: str = Query(min_length=1, max_length=200),
    since: int = Query(default=0, ge=0, le=MAX_ID, description="last message id the app has"),
    limit: int = Query(default=100, ge=1, le=500),
) -> Page[MessageRead]:
    """Replies addressed to one app user, oldest first: for apps without a callback URL."""
    ident = await session.scalar(
        select(ContactIdentity).where(
            ContactIdentity.kind == "app", ContactIdentity.value == contact_external_id
        )
    )
    if ident is None:
        raise NotFound("no app contact with that external id")
    rows = list(
        await session.scalars(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.contact_id == ident.contact_id,
                Message.id > since,
                Message.direction == "out",
                Message.channel == "app",
                # Addressed to this app user: the contact may hold other app identities
                # (merged on a verified phone), and their replies are theirs.
                Message.channel_meta["recipient"].as_string() == contact_external_id,
            )
            .order_by(Message.id)
            .limit(limit + 1)
        )
    )
    page = rows[:limit]
    items = await reads.message_reads(session, page)
    return Page(items=items, next_cursor=str(page[-1].id) if len(rows) > limit else None)


class AppRating(BaseModel):
    """The customer's answer to a rating request (a reply of kind `csat`)."""

    model_config = ConfigDict(extra="forbid")

    contact_external_id: str = Field(min_length=1, max_length=200)
    conversation_id: int = Field(ge=1, le=MAX_ID)
    score: int = Field(ge=1, le=5, strict=True)


class RatingResult(BaseModel):
    conversation_id: int
    score: int  # the conversation's score: the first answer's
    duplicate: bool  # it was rated already; nothing changed


@api_router.post("/inbound/rating", response_model=RatingResult)
async def rate(
    body: AppRating, _p: IntegrationDep, rt: RuntimeDep, session: SessionDep
) -> RatingResult:
    """Record an app user's 1–5 rating of a conversation they were asked to rate (a `csat`
    reply addressed to them): 404 if it is not theirs, 409 if they were never asked there.
    The first answer wins; a repeat answers `duplicate: true`."""
    ident = await session.scalar(
        select(ContactIdentity).where(
            ContactIdentity.kind == "app", ContactIdentity.value == body.contact_external_id
        )
    )
    conv = await session.get(Conversation, body.conversation_id)
    if ident is None or conv is None or conv.contact_id != ident.contact_id:
        raise NotFound("no such conversation for this app user")
    asked = await session.scalar(
        select(
            exists().where(
                Message.conversation_id == conv.id,
                Message.kind == satisfaction.CSAT_KIND,
                Message.channel == "app",
                Message.channel_meta["recipient"].as_string() == body.contact_external_id,
            )
        )
    )
    if not asked:
        raise Conflict("this app user was not asked to rate this conversation")
    rated = await satisfaction.record(session, rt, conv, body.score, channel="app")
    return RatingResult(conversation_id=conv.id, score=rated.score, duplicate=rated.duplicate)
