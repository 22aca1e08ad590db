"""The runtime registers exactly the channels whose settings are present."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from router.bootstrap import build_runtime
from router.settings import Settings


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, ["app", "webchat"]),
        ({"telegram_bot_token": SecretStr("123:abc")}, ["app", "telegram", "webchat"]),
        ({"smtp_url": SecretStr("smtp://127.0.0.1:2525")}, ["app", "webchat"]),  # no EMAIL_FROM
        (
            {"smtp_url": SecretStr("smtp://127.0.0.1:2525"), "email_from": "help@clinic.example"},
            ["app", "email", "webchat"],
        ),
    ],
)
async def test_configured_channels_only(
    tmp_path: Path, extra: dict[str, object], expected: list[str]
) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        _env_file=None,  # type: ignore[call-arg]
        **extra,  # type: ignore[arg-type]
    )
    rt = build_runtime(settings)
    try:
        assert sorted(rt.channels) == expected
    finally:
        for ch in rt.channels.values():
            await ch.aclose()
        await rt.db.dispose()
