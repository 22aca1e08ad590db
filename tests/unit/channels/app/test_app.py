from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from channels.app.adapter import sign
from channels.app.normalise import AppInbound, normalise
from channels.phones import e164

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+34 612 345 678", "ES", "+34612345678"),
        ("612345678", "ES", "+34612345678"),
        ("8 (912) 345-67-89", "RU", "+79123456789"),
        ("+1 (415) 555-2671", "ES", "+14155552671"),
        ("12", "ES", None),
        ("not a phone", "ES", None),
        (None, "ES", None),
    ],
)
def test_e164(raw: str | None, region: str, expected: str | None) -> None:
    assert e164(raw, region) == expected


def test_normalise_maps_identity_and_verification() -> None:
    payload = AppInbound.model_validate(
        {
            "contact": {
                "external_id": "u1",
                "name": "Ana",
                "email": "Ana@Example.ORG",
                "verified": True,
            },
            "message": {"external_id": "m1", "text": "hola"},
        }
    )
    msg = normalise(payload, now=NOW, phone="+34612345678")
    assert (msg.channel, msg.external_id, msg.text) == ("app", "m1", "hola")
    assert msg.sender.email == "ana@example.org"
    assert msg.sender.email_verified
    assert msg.sender.phone_verified
    assert msg.received_at == NOW


def test_unverified_contact_values_are_not_verified() -> None:
    payload = AppInbound.model_validate(
        {
            "contact": {"external_id": "u1", "email": "a@b.org", "verified": False},
            "message": {"external_id": "m1", "text": "hola"},
        }
    )
    msg = normalise(payload, now=NOW, phone="+34612345678")
    assert not msg.sender.email_verified
    assert not msg.sender.phone_verified


def test_naive_sent_at_is_rejected() -> None:
    with pytest.raises(ValidationError):
        AppInbound.model_validate(
            {
                "contact": {"external_id": "u1"},
                "message": {"external_id": "m1", "text": "x", "sent_at": "2026-01-01T00:00:00"},
            }
        )


def test_signature_is_hmac_sha256_hex() -> None:
    # Independent value: printf 'body' | openssl dgst -sha256 -hmac key
    assert sign("key", b"body") == (
        "sha256=515aae133b435d4000956731f68ae5cf5eb85d4f0dc6a546d2bfcd3595ec1ae1"
    )


async def test_callbacks_carry_a_signed_timestamp_with_the_callback_key() -> None:
    import hmac as hmac_mod
    from datetime import UTC, datetime
    from hashlib import sha256

    import httpx

    from channels.app.adapter import AppChannel
    from models.messages import OutboundMessage

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    now = datetime(2026, 1, 1, tzinfo=UTC)
    channel = AppChannel(
        "https://app.example/cb",
        "callback-key",
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        clock=lambda: now,
    )
    out = OutboundMessage(
        channel="app", conversation_id=1, message_id=2, recipient="u1", text="hola"
    )
    await channel.send(out)
    req = seen[0]
    t = int(now.timestamp())
    mac = hmac_mod.new(b"callback-key", f"{t}.".encode() + req.content, sha256).hexdigest()
    assert req.headers["X-Careline-Signature-V1"] == f"t={t},v1={mac}"
    assert "X-Careline-Signature" not in req.headers  # no legacy secret: no body-only form
