"""`careline telegram poll` and `careline telegram set-webhook` against the stand-in server."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from channels.telegram import TelegramChannel, polling
from channels.telegram.polling import ALLOWED_UPDATES, Poller, TelegramSetupError, set_webhook
from models import Conversation, Message
from router.runtime import Runtime
from router.settings import Settings
from tests.integration.channels.telegram.conftest import LUCIA, SECRET, TOKEN
from tests.support.factories import count_rows as count
from tests.support.telegram_server import FakeBotAPI, load_update


async def test_poll_stores_updates_and_moves_the_offset(
    rt: Runtime, tg: TelegramChannel, tg_api: FakeBotAPI
) -> None:
    tg_api.updates = [load_update("start"), load_update("text_entities"), load_update("poll")]
    poller = Poller(rt, tg, timeout_s=1)
    assert await poller.run_once() == 3
    assert poller.offset == 900000023 + 1
    [first] = tg_api.of("getUpdates")
    assert first.json("allowed_updates") == ALLOWED_UPDATES
    assert first.params["timeout"] == "1"
    assert await count(rt, Message, Message.external_id == f"{LUCIA}:101") == 1
    # The greeting went out after its update was stored.
    assert tg_api.of("sendMessage")[0].params["text"] == rt.policy.greeting_text("es")

    # Telegram forgets confirmed updates once asked with the next offset.
    assert await poller.run_once() == 0
    assert tg_api.of("getUpdates")[-1].params["offset"] == str(900000023 + 1)


async def test_a_failing_update_is_retried_then_skipped(
    rt: Runtime, tg: TelegramChannel, tg_api: FakeBotAPI
) -> None:
    tg_api.updates = [load_update("text_entities")]
    poller = Poller(rt, tg, timeout_s=1, error_pause_s=0, max_failures=2)
    db = rt.db

    class Broken:
        def session(self) -> object:
            raise RuntimeError("database down")

    rt.db = Broken()  # type: ignore[assignment]
    try:
        await poller.run_once()
        assert poller.offset is None, "not confirmed: Telegram will send it again"
        await poller.run_once()
        assert poller.offset == 900000001 + 1, "a poison update does not block the rest"
    finally:
        rt.db = db


async def test_run_deletes_the_webhook_and_stops_promptly(
    rt: Runtime, tg: TelegramChannel, tg_api: FakeBotAPI
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(Poller(rt, tg, timeout_s=1).run(stop))
    for _ in range(100):
        if tg_api.of("getUpdates"):
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert tg_api.of("deleteWebhook")[0].params["drop_pending_updates"] == "false"


async def test_run_polling_from_settings(
    rt: Runtime, tg_api: FakeBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = rt.settings.model_copy(
        update={"telegram_bot_token": SecretStr(TOKEN), "telegram_api_base": tg_api.base}
    )

    def build(s: Settings) -> Runtime:
        # This test's database (its SQLite file or PostgreSQL schema), and the adapter the
        # registry will build once wired (see the report).
        channel = TelegramChannel.from_settings(TOKEN, s.telegram_api_base)
        return Runtime(
            settings=s, db=rt.db, policy=rt.policy, channels={"telegram": channel}, clock=rt.clock
        )

    monkeypatch.setattr(polling, "build_runtime", build)
    tg_api.updates = [load_update("text_entities")]
    stop = asyncio.Event()
    task = asyncio.create_task(polling.run_polling(settings, stop))
    for _ in range(300):
        if await count(rt, Conversation):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 10)
    async with rt.db.session() as s:
        assert await s.scalar(select(Message.external_id).where(Message.direction == "in")) == (
            f"{LUCIA}:101"
        )


async def test_set_webhook_registers_public_url_secret_and_updates(
    rt: Runtime, tg_api: FakeBotAPI
) -> None:
    settings = rt.settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_webhook_secret": SecretStr(SECRET),
            "telegram_api_base": tg_api.base,
            "public_url": "https://care.example.org/",
        }
    )
    assert await set_webhook(settings) == "https://care.example.org/webhooks/telegram"
    [call] = tg_api.of("setWebhook")
    assert call.token == TOKEN
    assert call.params["url"] == "https://care.example.org/webhooks/telegram"
    assert call.params["secret_token"] == SECRET
    assert call.json("allowed_updates") == ALLOWED_UPDATES


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"telegram_bot_token": None}, "TELEGRAM_BOT_TOKEN"),
        ({"telegram_webhook_secret": None}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"telegram_webhook_secret": SecretStr("has spaces")}, "TELEGRAM_WEBHOOK_SECRET"),
    ],
)
async def test_set_webhook_needs_token_and_a_valid_secret(
    rt: Runtime, tg_api: FakeBotAPI, update: dict[str, object], message: str
) -> None:
    settings = rt.settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_webhook_secret": SecretStr(SECRET),
            "telegram_api_base": tg_api.base,
            **update,
        }
    )
    with pytest.raises(TelegramSetupError, match=message):
        await set_webhook(settings)
    assert tg_api.of("setWebhook") == []


async def test_set_webhook_reports_telegrams_refusal(rt: Runtime, tg_api: FakeBotAPI) -> None:
    tg_api.fail("setWebhook", 400, "Bad Request: bad webhook: HTTPS url must be provided")
    settings = rt.settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_webhook_secret": SecretStr(SECRET),
            "telegram_api_base": tg_api.base,
        }
    )
    with pytest.raises(TelegramSetupError, match="HTTPS url must be provided"):
        await set_webhook(settings)
