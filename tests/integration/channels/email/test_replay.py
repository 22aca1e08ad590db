"""`X-Careline-Signature` with a signed timestamp: a captured request replays only inside the
window, the body-only form only during the transition, and each key serves one use."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from channels.signing import (
    callback_key,
    derive_key,
    hmac_sha256_header,
    inbound_key,
    link_key,
    timestamped_header,
)
from channels.telegram.link import mint_link_token, verify_link_token
from models import Message
from router.runtime import Runtime
from tests.integration.channels.email.conftest import SECRET
from tests.integration.channels.email.support import mail


def v1(rt: Runtime, body: bytes, *, age_s: int = 0, key: str | None = None) -> dict[str, str]:
    t = int((rt.now() - timedelta(seconds=age_s)).timestamp())
    return {
        "Content-Type": "message/rfc822",
        "X-Careline-Signature": timestamped_header(
            key or derive_key(SECRET, "careline inbound webhook v1"), body, t=t
        ),
    }


async def stored(rt: Runtime) -> int:
    async with rt.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Message)) or 0)


async def test_a_replayed_signature_outside_the_window_is_refused(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    raw = mail()
    # Captured six minutes ago: the timestamp is signed, so it cannot be refreshed.
    r = await email_client.post(
        "/webhooks/email", content=raw, headers=v1(email_rt, raw, age_s=301)
    )
    assert r.status_code == 401, r.text
    assert await stored(email_rt) == 0
    # A timestamp from the future is as stale.
    r = await email_client.post(
        "/webhooks/email", content=raw, headers=v1(email_rt, raw, age_s=-301)
    )
    assert r.status_code == 401
    # Re-signing another body under an old timestamp does not help either.
    headers = v1(email_rt, b"other body", age_s=10)
    r = await email_client.post("/webhooks/email", content=raw, headers=headers)
    assert r.status_code == 401
    r = await email_client.post("/webhooks/email", content=raw, headers=v1(email_rt, raw, age_s=60))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "stored"


async def test_the_window_is_configurable(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    email_rt.settings = email_rt.settings.model_copy(update={"signature_tolerance_s": 30})
    raw = mail()
    r = await email_client.post("/webhooks/email", content=raw, headers=v1(email_rt, raw, age_s=60))
    assert r.status_code == 401


async def test_body_only_signature_only_during_the_transition(
    email_rt: Runtime,
    email_client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The deprecation is logged once per process: start this test as a fresh process would.
    monkeypatch.setattr("channels.signing._legacy_warned", False)
    raw = mail()
    legacy = {
        "Content-Type": "message/rfc822",
        "X-Careline-Signature": hmac_sha256_header(SECRET, raw),
    }
    with caplog.at_level(logging.WARNING, logger="channels.signing"):
        r = await email_client.post("/webhooks/email", content=raw, headers=legacy)
    assert r.status_code == 200
    assert any("deprecated" in rec.getMessage() for rec in caplog.records)
    email_rt.settings = email_rt.settings.model_copy(update={"signature_legacy": False})
    raw2 = mail(message_id="<m2@correo.example>")
    legacy["X-Careline-Signature"] = hmac_sha256_header(SECRET, raw2)
    r = await email_client.post("/webhooks/email", content=raw2, headers=legacy)
    assert r.status_code == 401
    # The body-only form signed with the derived inbound key is no way around it.
    legacy["X-Careline-Signature"] = hmac_sha256_header(inbound_key(email_rt.settings) or "", raw2)
    r = await email_client.post("/webhooks/email", content=raw2, headers=legacy)
    assert r.status_code == 401


async def test_each_use_has_its_own_key(email_rt: Runtime, email_client: httpx.AsyncClient) -> None:
    settings = email_rt.settings.model_copy(update={"signature_legacy": False})
    email_rt.settings = settings
    keys = {inbound_key(settings), callback_key(settings), link_key(settings), SECRET}
    assert len(keys) == 4
    assert None not in keys
    # The app back-end holds the callback key: it signs no inbound webhook...
    raw = mail()
    forged = v1(email_rt, raw, key=callback_key(settings))
    r = await email_client.post("/webhooks/email", content=raw, headers=forged)
    assert r.status_code == 401
    # ...and mints no Telegram link token.
    expires = email_rt.now() + timedelta(hours=1)
    token = mint_link_token(callback_key(settings) or "", "u-1", expires_at=expires)
    assert verify_link_token(link_key(settings) or "", token, now=email_rt.now()) is None
    # An explicit key wins over the derived one.
    own = settings.model_copy(update={"inbound_webhook_secret": SecretStr("k" * 32)})
    assert inbound_key(own) == "k" * 32
