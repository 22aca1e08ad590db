"""Call-log webhooks: verify → normalise → persist (the request's transaction) → answer.

- `POST /webhooks/calls/twilio`: Twilio Voice status and transcription callbacks.
  200 `{"status": "stored"|"duplicate"|"ignored", "conversation_id", "message_id"}`.
- `POST /webhooks/calls`: generic JSON, one record or an array of records.
  One record: 200 `{"conversation_id", "message_id", "duplicate"}`, or 422 with the reason.
  An array: 200 `{"accepted": [{"index", "conversation_id", "message_id", "duplicate"}],
  "rejected": [{"index", "reason"}]}`: good records are stored even when others are bad,
  and re-sending the whole batch is safe (each record is de-duplicated).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from channels.calls import generic, twilio
from channels.calls.common import PhoneNormaliser
from channels.phones import e164
from channels.signing import configured, verify_request
from models.messages import InboundMessage
from router.api.deps import RuntimeDep, SessionDep
from router.errors import InvalidInput, PayloadTooLarge, RouterError
from router.flows import ingest
from router.runtime import Runtime

log = logging.getLogger(__name__)
api_router = APIRouter(prefix="/webhooks/calls", tags=["calls channel"])


class TwilioAck(BaseModel):
    status: str  # stored | duplicate | ignored
    conversation_id: int | None = None
    message_id: int | None = None


class CallStored(BaseModel):
    conversation_id: int
    message_id: int
    duplicate: bool


class BatchAccepted(CallStored):
    index: int


class BatchRejected(BaseModel):
    index: int
    reason: str


class BatchResult(BaseModel):
    accepted: list[BatchAccepted]
    rejected: list[BatchRejected]


def _phone(rt: Runtime) -> PhoneNormaliser:
    region = rt.settings.default_region
    return lambda raw: e164(raw, region)


@api_router.post("/twilio", response_model=TwilioAck)
async def twilio_callback(request: Request, rt: RuntimeDep, session: SessionDep) -> TwilioAck:
    """A Twilio Voice status callback; 403 on a bad signature, 404 when not configured."""
    token = configured(rt.settings.twilio_auth_token, "Twilio calls")
    body = await request.body()  # size: BodyLimitMiddleware
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise InvalidInput("the body is not UTF-8 form data") from exc
    # Twilio signs the URL it was given: our public URL, the path and any query string.
    url = rt.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    twilio.verify_signature(token, url, pairs, request.headers.get("x-twilio-signature"))

    msg = twilio.normalise(dict(pairs), now=rt.now(), e164=_phone(rt))
    if msg is None:
        return TwilioAck(status="ignored")
    res = await _grouped(rt, session, msg)
    log.info(
        "call log",
        extra={
            "provider": "twilio",
            "call_status": msg.call.status if msg.call else None,
            "conversation_id": res.conversation_id,
            "duplicate": res.duplicate,
        },
    )
    return TwilioAck(
        status="duplicate" if res.duplicate else "stored",
        conversation_id=res.conversation_id,
        message_id=res.message_id,
    )


@api_router.post("", response_model=CallStored | BatchResult)
async def generic_call_log(
    request: Request, rt: RuntimeDep, session: SessionDep
) -> CallStored | BatchResult:
    """One generic call record or a batch (JSON array), signed with `X-Careline-Signature`."""
    body = await request.body()  # size: BodyLimitMiddleware
    sig = request.headers.get("x-careline-signature")
    verify_request(rt.settings, "calls", body, sig, rt.now().timestamp())
    try:
        payload: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput("the body is not JSON") from exc

    phone = _phone(rt)
    if not isinstance(payload, list):
        msg = generic.normalise(generic.parse(payload), now=rt.now(), e164=phone)
        res = await _grouped(rt, session, msg)
        return CallStored(
            conversation_id=res.conversation_id, message_id=res.message_id, duplicate=res.duplicate
        )

    if len(payload) > generic.MAX_BATCH:
        raise PayloadTooLarge(f"a batch holds at most {generic.MAX_BATCH} records")
    result = BatchResult(accepted=[], rejected=[])
    for index, record in enumerate(payload):
        try:
            msg = generic.normalise(generic.parse(record), now=rt.now(), e164=phone)
            # ingest runs each record in its own savepoint: a failure leaves the others intact.
            res = await ingest.ingest(session, rt, msg)
        except RouterError as exc:
            result.rejected.append(BatchRejected(index=index, reason=exc.detail))
            continue
        result.accepted.append(
            BatchAccepted(
                index=index,
                conversation_id=res.conversation_id,
                message_id=res.message_id,
                duplicate=res.duplicate,
            )
        )
    log.info(
        "call log batch",
        extra={"accepted": len(result.accepted), "rejected": len(result.rejected)},
    )
    return result


async def _grouped(rt: Runtime, session: AsyncSession, msg: InboundMessage) -> ingest.IngestResult:
    """One call record, written with concurrent deliveries (group commit)."""
    res: ingest.IngestResult = await rt.group.run(
        session,
        lambda s: ingest.ingest(s, rt, msg),
        key=f"{msg.channel}:{msg.sender.external_id}",
        isolated=True,
        ahead=ingest.ahead(rt, msg.channel, msg.sender, msg.external_id),
    )
    return res
