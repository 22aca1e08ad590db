"""The `app` channel's outbound side (inbound: `normalise` and `routes`).

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

from channels.base import DeliveryError
from channels.signing import hmac_sha256_header, timestamped_header
from models.base import utcnow
from models.messages import DeliveryResult, OutboundMessage
from models.vocab import ChannelName


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
