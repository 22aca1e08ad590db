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

VERSION = 1


class BadToken(Exception):
    """The token is malformed, forged or expired. The message is safe to show (no token)."""


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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, claims: VisitorClaims) -> str:
    body: dict[str, object] = {"ver": VERSION, "v": claims.visitor_id, "exp": claims.expires_at}
    for field, value in (("n", claims.name), ("e", claims.email), ("l", claims.locale)):
        if value:
            body[field] = value
    payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def verify(key: bytes, token: str, now: datetime) -> VisitorClaims:
    """The claims of a genuine, unexpired token, or `BadToken`."""
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
    visitor, exp = body.get("v"), body.get("exp")
    if not isinstance(visitor, str) or not visitor or not isinstance(exp, int):
        raise BadToken("malformed token")
    if exp <= int(now.timestamp()):
        raise BadToken("token expired")

    def opt(field: str) -> str | None:
        value = body.get(field)
        return value if isinstance(value, str) and value else None

    return VisitorClaims(visitor, exp, name=opt("n"), email=opt("e"), locale=opt("l"))
