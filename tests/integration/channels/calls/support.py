"""Helpers for the call-log tests: signed requests made the way the providers make them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select

from models import CallbackRequest, Event, Message
from router.runtime import Runtime
from tests.support.fakes import FakeClock

DATA = Path(__file__).parents[3] / "data" / "calls"
TWILIO_TOKEN = "twilio-auth-token-for-tests"
SECRET = "calls-webhook-secret-for-tests"
PUBLIC_URL = "https://careline.example"
CALLER = "+14158675310"


def twilio_sign(token: str, url: str, params: dict[str, str]) -> str:
    """Independent implementation of Twilio's published algorithm (not the app's code)."""
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def twilio_params(name: str, clock: FakeClock | None = None, **override: str) -> dict[str, str]:
    """A documented parameter set; its Timestamp moved to the test clock's now."""
    params: dict[str, str] = json.loads((DATA / "twilio" / f"{name}.json").read_text())
    if clock is not None and "Timestamp" in params:
        params["Timestamp"] = format_datetime(clock.now)
    params.update(override)
    return params


async def post_twilio(
    client: httpx.AsyncClient,
    params: dict[str, str],
    *,
    query: str = "",
    token: str = TWILIO_TOKEN,
    signature: str | None = None,
) -> httpx.Response:
    path = "/webhooks/calls/twilio" + (f"?{query}" if query else "")
    sig = signature if signature is not None else twilio_sign(token, PUBLIC_URL + path, params)
    return await client.post(
        path,
        content=urlencode(params).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sig,
        },
    )


def generic_record(name: str, **override: Any) -> Any:
    record = json.loads((DATA / "generic" / f"{name}.json").read_text())
    if isinstance(record, dict):
        record.update(override)
    return record


async def post_generic(
    client: httpx.AsyncClient, payload: Any, *, secret: str = SECRET, raw: bytes | None = None
) -> httpx.Response:
    body = raw if raw is not None else json.dumps(payload).encode()
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return await client.post(
        "/webhooks/calls",
        content=body,
        headers={"Content-Type": "application/json", "X-Careline-Signature": f"sha256={mac}"},
    )


async def callbacks_of(rt: Runtime, conv_id: int | None = None) -> list[CallbackRequest]:
    async with rt.db.session() as s:
        stmt = select(CallbackRequest).order_by(CallbackRequest.id)
        if conv_id is not None:
            stmt = stmt.where(CallbackRequest.conversation_id == conv_id)
        return list(await s.scalars(stmt))


async def call_messages(rt: Runtime) -> list[Message]:
    async with rt.db.session() as s:
        return list(
            await s.scalars(select(Message).where(Message.kind == "call").order_by(Message.id))
        )


async def event_types(rt: Runtime, prefix: str = "callback.") -> list[str]:
    async with rt.db.session() as s:
        rows = await s.scalars(
            select(Event).where(Event.type.like(f"{prefix}%")).order_by(Event.id)
        )
        return [e.type for e in rows]
