"""Deep-link tokens: `https://t.me/<bot>?start=<token>` links a Telegram chat to an app user.

The clinic's app back-end mints the token for its signed-in user with the shared
`CARELINE_WEBHOOK_SECRET` (the key it already uses to check Careline's callbacks), so no
extra API round trip is needed and nobody can link a chat to someone else's account: the
token is an HMAC over the app user's external id and an expiry. Telegram allows 64
characters of `[A-Za-z0-9_-]`, so the token is packed in binary and base64url-encoded:

    flags (1 byte) | expires, unix seconds (4, big-endian) | HMAC-SHA256 truncated (10) | id

flags bit 0 means the id is a canonical lower-case UUID packed in 16 bytes (36 characters
would not fit otherwise); else the id is UTF-8, at most 33 bytes. 80 bits of MAC is ample
for a token that is checked online and expires (short by default, because a link can leak
from a screenshot or a shared phone and would let its holder receive that user's replies).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from datetime import datetime

MAX_TOKEN_CHARS = 64
_HEADER = struct.Struct(">BI")
_MAC_BYTES = 10
_UUID_FLAG = 0x01
MAX_RAW_ID_BYTES = (MAX_TOKEN_CHARS * 3 // 4) - _HEADER.size - _MAC_BYTES  # 33


def _mac(secret: str, header: bytes, ident: bytes) -> bytes:
    msg = b"careline:telegram-link:" + header + ident
    return hmac.new(secret.encode(), msg, hashlib.sha256).digest()[:_MAC_BYTES]


def _pack_id(app_external_id: str) -> tuple[int, bytes]:
    try:
        as_uuid = uuid.UUID(app_external_id)
    except ValueError:
        as_uuid = None
    if as_uuid is not None and str(as_uuid) == app_external_id:
        return _UUID_FLAG, as_uuid.bytes
    raw = app_external_id.encode()
    if not raw or len(raw) > MAX_RAW_ID_BYTES:
        raise ValueError(
            f"an app external id must be a UUID or 1-{MAX_RAW_ID_BYTES} bytes to fit a deep link"
        )
    return 0, raw


def mint_link_token(secret: str, app_external_id: str, *, expires_at: datetime) -> str:
    """The `start` parameter for the app user `app_external_id` (reference implementation
    for the app back-end; see the module docstring for the format)."""
    if not secret:
        raise ValueError("a secret is required")
    flags, ident = _pack_id(app_external_id)
    header = _HEADER.pack(flags, int(expires_at.timestamp()))
    token = base64.urlsafe_b64encode(header + _mac(secret, header, ident) + ident)
    return token.decode().rstrip("=")


def verify_link_token(secret: str, token: str, *, now: datetime) -> str | None:
    """The app external id the token vouches for, or None (malformed, forged or expired)."""
    if not secret or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) <= _HEADER.size + _MAC_BYTES:
        return None
    header, mac = raw[: _HEADER.size], raw[_HEADER.size : _HEADER.size + _MAC_BYTES]
    ident = raw[_HEADER.size + _MAC_BYTES :]
    if not hmac.compare_digest(mac, _mac(secret, header, ident)):
        return None
    flags, expires = _HEADER.unpack(header)
    if expires < now.timestamp():
        return None
    if flags & _UUID_FLAG:
        return str(uuid.UUID(bytes=ident)) if len(ident) == 16 else None
    try:
        return ident.decode()
    except UnicodeDecodeError:
        return None
