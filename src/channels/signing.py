"""Webhook authenticity checks shared by channels. Constant-time comparisons only."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

from router.errors import NotFound, Unauthorized


def configured(secret: SecretStr | None, channel: str) -> str:
    """The secret's value, or 404: an empty secret would verify anything, so the webhook
    does not exist until it is configured."""
    value = secret.get_secret_value() if secret is not None else ""
    if not value:
        raise NotFound(f"the {channel} webhook is not configured")
    return value


def hmac_sha256_header(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_careline_signature(secret: str, body: bytes, header: str | None) -> None:
    """`X-Careline-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>` or 401."""
    if not header:
        raise Unauthorized("missing X-Careline-Signature header")
    expected = hmac_sha256_header(secret, body)
    if not hmac.compare_digest(expected.encode(), header.strip().lower().encode()):
        raise Unauthorized("bad X-Careline-Signature")


def verify_token(expected: str, given: str | None, header_name: str) -> None:
    if not given:
        raise Unauthorized(f"missing {header_name} header")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise Unauthorized(f"bad {header_name}")
