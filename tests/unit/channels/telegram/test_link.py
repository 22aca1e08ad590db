"""Deep-link tokens: fit Telegram's 64-char alphabet, verify only when signed and fresh."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from channels.telegram.link import MAX_RAW_ID_BYTES, mint_link_token, verify_link_token

SECRET = "webhook-secret-for-tests"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=30)


@pytest.mark.parametrize(
    "app_id",
    ["u-42", "9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab", "ü" * 16, "x" * MAX_RAW_ID_BYTES],
)
def test_round_trip_within_telegram_limits(app_id: str) -> None:
    token = mint_link_token(SECRET, app_id, expires_at=LATER)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", token)
    assert verify_link_token(SECRET, token, now=NOW) == app_id


def test_upper_case_uuid_is_kept_verbatim() -> None:
    app_id = "9F1C2D3E-4B5A-4C6D-8E7F-0123456789AB"[:33]
    token = mint_link_token(SECRET, app_id, expires_at=LATER)
    assert verify_link_token(SECRET, token, now=NOW) == app_id


def test_too_long_id_is_refused_at_minting() -> None:
    with pytest.raises(ValueError, match="fit a deep link"):
        mint_link_token(SECRET, "x" * (MAX_RAW_ID_BYTES + 1), expires_at=LATER)


def test_expired_token() -> None:
    token = mint_link_token(SECRET, "u-42", expires_at=NOW - timedelta(seconds=1))
    assert verify_link_token(SECRET, token, now=NOW) is None


def test_other_secret_or_tampered_token() -> None:
    token = mint_link_token(SECRET, "u-42", expires_at=LATER)
    assert verify_link_token("another-secret", token, now=NOW) is None
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert verify_link_token(SECRET, flipped, now=NOW) is None


@pytest.mark.parametrize("token", ["", "!!!", "abc", "A" * 65, "%%%%"])
def test_garbage(token: str) -> None:
    assert verify_link_token(SECRET, token, now=NOW) is None


def test_no_secret_verifies_nothing() -> None:
    token = mint_link_token(SECRET, "u-42", expires_at=LATER)
    assert verify_link_token("", token, now=NOW) is None
