"""Telegram fixtures: the stand-in Bot API server, the real adapter on it, and an app with
the Telegram routes mounted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from channels.telegram import TelegramChannel
from channels.telegram.webhook import SECRET_HEADER, api_router
from router.api import create_app
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.support.telegram_server import FakeBotAPI

TOKEN = "123456:TEST-token-abcdefghijklmnop"
SECRET = "tg-webhook_secret-0123456789"
LINK_SECRET = "careline-webhook-secret-for-links"
LUCIA = 123456789


@pytest.fixture
async def tg_api() -> AsyncIterator[FakeBotAPI]:
    server = FakeBotAPI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def tg(rt: Runtime, tg_api: FakeBotAPI) -> AsyncIterator[TelegramChannel]:
    rt.settings = rt.settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_webhook_secret": SecretStr(SECRET),
            "telegram_api_base": tg_api.base,
            "webhook_secret": SecretStr(LINK_SECRET),
        }
    )
    channel = TelegramChannel.from_settings(TOKEN, tg_api.base)
    rt.channels["telegram"] = channel
    yield channel
    await channel.aclose()


def make_client(rt: Runtime) -> httpx.AsyncClient:
    app = create_app(runtime=rt)
    app.include_router(api_router)
    app.state.runtime = rt  # ASGITransport does not run the lifespan
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://careline.test")


@pytest.fixture
async def tg_client(rt: Runtime, tg: TelegramChannel) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(rt) as c:
        yield c


async def post_update(
    client: httpx.AsyncClient, update: dict[str, Any], *, secret: str | None = SECRET
) -> httpx.Response:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    return await client.post("/webhooks/telegram", json=update, headers=headers)


async def drain(rt: Runtime) -> None:
    worker = OutboxWorker(rt)
    while await worker.run_once():
        pass
