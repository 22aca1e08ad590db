"""`POST /webhooks/email`: a raw RFC 5322 message from an inbound-mail provider.

verify → parse → persist (the request's unit of work) → answer. The body is read and
authenticated in a dependency declared before the session, so an oversized or unsigned
request is refused without opening a transaction. Answers 200 with
`{"status": "stored"|"duplicate"|"ignored", "reason", "conversation_id", "message_id"}`:
"ignored" (bounces, auto-replies, loops) is a success too, so the provider does not retry.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from channels.email.receive import Outcome, prepare, store_mail
from channels.signing import inbound_key, verify_request
from router.api.deps import RuntimeDep, SessionDep
from router.errors import InvalidInput, NotFound, RouterError
from router.files import AttachmentStore

api_router = APIRouter(prefix="/webhooks", tags=["email channel"])

DEFAULT_MAX_BYTES = 10_000_000
_ACCEPTED_TYPES = ("message/rfc822", "application/octet-stream", "text/plain")


class UnsupportedMediaType(RouterError):
    status_code = 415
    title = "Unsupported media type"


class EmailAck(BaseModel):
    status: str
    reason: str | None = None
    conversation_id: int | None = None
    message_id: int | None = None


def max_bytes(settings: object) -> int:
    return int(getattr(settings, "email_max_bytes", DEFAULT_MAX_BYTES))


async def signed_body(request: Request, rt: RuntimeDep) -> bytes:
    if inbound_key(rt.settings) is None:
        raise NotFound("the email webhook is not configured")
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype and ctype not in _ACCEPTED_TYPES:
        raise UnsupportedMediaType("send the raw message as Content-Type: message/rfc822")
    # Size: BodyLimitMiddleware refuses a body over EMAIL_MAX_BYTES before it is read.
    body = await request.body()
    sig = request.headers.get("x-careline-signature")
    verify_request(rt.settings, "email", body, sig, rt.now().timestamp())
    if not body.strip():
        raise InvalidInput("the body is empty")
    return body


SignedBody = Annotated[bytes, Depends(signed_body)]


@api_router.post("/email", response_model=EmailAck)
async def email_webhook(body: SignedBody, rt: RuntimeDep, session: SessionDep) -> EmailAck:
    """One raw message (`message/rfc822`) signed with `X-Careline-Signature`.
    404 when WEBHOOK_SECRET is unset, 401 bad signature, 413 too large, 422 unusable mail."""
    ready = await prepare(session, rt, body, store=AttachmentStore.from_settings(rt.settings))
    if isinstance(ready, Outcome):
        outcome = ready  # machine mail, recorded (or dropped) in the request's unit of work
    else:
        # Group commit, like the other inbound paths: the files are already on disk, so the
        # shared transaction never waits on file I/O.
        outcome = await rt.group.run(
            session,
            lambda s: store_mail(s, rt, ready),
            key=ready.key,
            isolated=True,
            ahead=ready.ahead(rt),
        )
    return EmailAck(
        status=outcome.status,
        reason=outcome.reason,
        conversation_id=outcome.conversation_id,
        message_id=outcome.message_id,
    )
