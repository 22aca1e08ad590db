"""An app with the calls webhooks and the callbacks API mounted, and their secrets set."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from channels.calls import webhooks
from router.api import create_app
from router.api.routes import callbacks as callbacks_routes
from router.runtime import Runtime
from tests.integration.channels.calls.support import PUBLIC_URL, SECRET, TWILIO_TOKEN


def _mount(app: FastAPI) -> None:
    # Until the lead wires them into create_app(); never mounted twice.
    paths = {getattr(r, "path", None) for r in app.routes}
    if "/webhooks/calls/twilio" not in paths:
        app.include_router(webhooks.api_router)
    if "/api/v1/callbacks" not in paths:
        app.include_router(callbacks_routes.api_router)


@pytest.fixture
def calls_rt(rt: Runtime) -> Runtime:
    rt.settings = rt.settings.model_copy(
        update={
            "twilio_auth_token": SecretStr(TWILIO_TOKEN),
            "webhook_secret": SecretStr(SECRET),
            "public_url": PUBLIC_URL + "/",  # a trailing slash must not change the signed URL
        }
    )
    return rt


@pytest.fixture
async def calls_client(calls_rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=calls_rt)
    _mount(app)
    app.state.runtime = calls_rt  # ASGITransport does not run the lifespan
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://careline.test") as c:
        yield c


@pytest.fixture
async def bare_client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The routes mounted but no Twilio token nor webhook secret configured."""
    app = create_app(runtime=rt)
    _mount(app)
    app.state.runtime = rt
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://careline.test") as c:
        yield c
