"""The `app` channel: mobile/web apps post messages to `POST /api/v1/inbound`.

Replies go back to the app's back-end by a signed callback when `CARELINE_APP_CALLBACK_URL`
is set; otherwise they are stored for the app to pull (`GET /api/v1/inbound/messages`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, field_validator

from channels.base import DeliveryError
from channels.signing import hmac_sha256_header, timestamped_header
from models.base import utcnow
from models.messages import (
    ChannelName,
    DeliveryResult,
    InboundMessage,
    OutboundMessage,
    Sender,
    check_date,
)


class AppContact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: EmailStr | None = None
    # Only when the app's back-end says it verified these (SMS code, e-mail link) do they
    # merge contacts. The default is no: an app user who types a stranger's phone number
    # must not join the stranger's conversations and receive their replies.
    verified: bool = False


class AppMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=20_000)
    sent_at: AwareDatetime | None = None

    @field_validator("sent_at")
    @classmethod
    def _possible(cls, value: datetime | None) -> datetime | None:
        return check_date(value)


class AppInbound(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: AppContact
    message: AppMessage


def normalise(payload: AppInbound, *, now: datetime, phone: str | None) -> InboundMessage:
    """Pure: the app's JSON (already validated) → one `InboundMessage`.

    `phone` is the contact's phone already normalised to E.164 (or None if absent/invalid).
    """
    c = payload.contact
    return InboundMessage(
        channel="app",
        external_id=payload.message.external_id,
        sender=Sender(
            external_id=c.external_id,
            name=c.name,
            phone=phone,
            phone_verified=c.verified and phone is not None,
            email=str(c.email).lower() if c.email else None,
            email_verified=c.verified and c.email is not None,
        ),
        text=payload.message.text,
        received_at=now,
        sent_at=payload.message.sent_at,
    )


def sign(secret: str, body: bytes) -> str:
    """The deprecated body-only form (sent only while SIGNATURE_LEGACY is on)."""
    return hmac_sha256_header(secret, body)


def sign_v1(secret: str, body: bytes, *, t: int) -> str:
    """`t=<unix>,v1=<hex>` over `"{t}.{body}"` with the callback key: check the HMAC and
    refuse a `t` more than 5 minutes away, and a captured callback cannot be replayed."""
    return timestamped_header(secret, body, t=t)


# httpx's timeout bounds each step (connect, every single read), not the call: a back-end
# that trickles its answer a byte at a time never trips it and would hold the outbox worker
# for as long as it likes. The whole callback gets this deadline, well inside the outbox
# lease (60 s), so a slow back-end costs one retry, never a stuck worker or a double send.
CALLBACK_DEADLINE_S = 15.0


class AppChannel:
    name: ClassVar[ChannelName] = "app"

    def __init__(
        self,
        callback_url: str | None,
        secret: str | None,
        client: httpx.AsyncClient | None = None,
        *,
        deadline_s: float = CALLBACK_DEADLINE_S,
        legacy_secret: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._url = callback_url
        self._secret = secret  # the callback key (not WEBHOOK_SECRET itself)
        self._legacy = legacy_secret  # WEBHOOK_SECRET during the transition, else None
        self.clock = clock
        self._client = client or httpx.AsyncClient(timeout=10)
        self.deadline_s = deadline_s

    async def send(self, msg: OutboundMessage) -> DeliveryResult:
        if not self._url:
            return DeliveryResult(status="available")
        body = json.dumps(
            {
                "conversation_id": msg.conversation_id,
                "message_id": msg.message_id,
                "recipient": msg.recipient,
                "text": msg.text,
                "kind": msg.kind,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self._secret:
            t = int(self.clock().timestamp())
            headers["X-Careline-Signature-V1"] = sign_v1(self._secret, body, t=t)
        if self._legacy:
            headers["X-Careline-Signature"] = sign(self._legacy, body)
        try:
            async with asyncio.timeout(self.deadline_s):
                resp = await self._client.post(self._url, content=body, headers=headers)
        except TimeoutError as exc:
            raise DeliveryError(
                f"app callback: no complete answer within {self.deadline_s:g} s (timeout)",
                retryable=True,
            ) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"app callback: {type(exc).__name__}", retryable=True) from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            retry_after = resp.headers.get("Retry-After")
            raise DeliveryError(
                f"app callback answered {resp.status_code}",
                retryable=True,
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        if resp.status_code >= 400:
            raise DeliveryError(f"app callback answered {resp.status_code}", retryable=False)
        return DeliveryResult(status="sent")

    async def aclose(self) -> None:
        await self._client.aclose()
