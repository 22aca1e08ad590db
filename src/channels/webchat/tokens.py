"""Visitor tokens: who a web chat visitor is, signed by us, so sessions need no table.

A token is `base64url(JSON claims) "." base64url(HMAC-SHA256(key, claims))`. The claims carry
the visitor id, an expiry, and what the visitor told us about themselves (name, an unverified
e-mail, a locale): every instance can check a token without a database read, and resuming a
session simply re-signs the claims with a later expiry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

VERSION = 1


class BadToken(Exception):
    """The token is malformed, forged or expired. The message is safe to show (no token)."""


class ExpiredToken(BadToken):
    """A genuine token past its expiry (a page may answer 410 rather than 400)."""


@dataclass(frozen=True)
class VisitorClaims:
    visitor_id: str
    expires_at: int  # Unix seconds
    name: str | None = None
    email: str | None = None  # as typed by the visitor: never verified
    locale: str | None = None

    def renewed(self, now: datetime, ttl_s: int) -> VisitorClaims:
        return replace(self, expires_at=int(now.timestamp()) + ttl_s)


def new_visitor_id() -> str:
    # Hex only: the id appears in external ids and must never need escaping anywhere.
    return "v" + secrets.token_hex(12)


def derive_key(secret: str, purpose: bytes = b"careline/webchat/token/v1") -> bytes:
    """A key for this purpose only, so a secret shared with webhooks never signs the same
    bytes for two uses."""
    return hmac.new(secret.encode(), purpose, hashlib.sha256).digest()


def subkey(key: bytes, purpose: bytes) -> bytes:
    """A key for another kind of token signed by the same channel: a visitor token (which
    carries an unverified e-mail) must never pass as an e-mail confirmation, and back."""
    return hmac.new(key, purpose, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_body(key: bytes, body: dict[str, object]) -> str:
    """`body` (JSON) signed with `key`: the shape shared by every web chat token."""
    payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def verify_body(key: bytes, token: str, now: datetime) -> dict[str, Any]:
    """The body of a genuine, unexpired token of this version, or `BadToken`."""
    payload, dot, mac = token.partition(".")
    if not dot or not payload or not mac or len(token) > 4096:
        raise BadToken("malformed token")
    expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(mac)
        body = json.loads(_unb64(payload))
    except (binascii.Error, ValueError) as exc:
        raise BadToken("malformed token") from exc
    # Constant time, and before looking at the claims: a forged token learns nothing.
    if not hmac.compare_digest(expected, given):
        raise BadToken("bad token signature")
    if not isinstance(body, dict) or body.get("ver") != VERSION:
        raise BadToken("unsupported token version")
    exp = body.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise BadToken("malformed token")
    if exp <= int(now.timestamp()):
        raise ExpiredToken("token expired")
    return body


def opt_str(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    return value if isinstance(value, str) and value else None


def sign(key: bytes, claims: VisitorClaims) -> str:
    body: dict[str, object] = {"ver": VERSION, "v": claims.visitor_id, "exp": claims.expires_at}
    for field, value in (("n", claims.name), ("e", claims.email), ("l", claims.locale)):
        if value:
            body[field] = value
    return sign_body(key, body)


def verify(key: bytes, token: str, now: datetime) -> VisitorClaims:
    """The claims of a genuine, unexpired token, or `BadToken`."""
    body = verify_body(key, token, now)
    visitor = opt_str(body, "v")
    if visitor is None:
        raise BadToken("malformed token")
    return VisitorClaims(
        visitor,
        body["exp"],
        name=opt_str(body, "n"),
        email=opt_str(body, "e"),
        locale=opt_str(body, "l"),
    )
