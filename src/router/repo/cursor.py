"""The API's opaque page cursors: an id (or an offset) in URL-safe base64."""

from __future__ import annotations

import base64

from models.schemas import MAX_ID
from router.errors import InvalidInput


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid cursor") from exc
    if not 0 <= value <= MAX_ID:  # a forged cursor must not overflow the id column
        raise InvalidInput("invalid cursor")
    return value
