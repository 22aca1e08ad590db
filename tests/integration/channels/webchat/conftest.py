"""Web chat fixtures: the app with the web chat mounted, served by uvicorn on loopback, and
a small visitor client speaking the real WebSocket protocol."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from channels.webchat import WebchatChannel, WebchatConfig
from channels.webchat.routes import api_router as webchat_router
from router.api import create_app
from router.runtime import Runtime
from tests.support.server import serve

CLINIC = "https://clinic.example"
TEST_CONFIG = WebchatConfig(
    secret="webchat-test-secret",
    allowed_origins=(CLINIC,),
    max_frame_bytes=2048,
    max_text_chars=500,
    messages_per_minute=6,
    max_sockets_per_visitor=2,
    poll_s=0.2,
)


def webchat_app(rt: Runtime) -> FastAPI:
    app = create_app(runtime=rt)
    app.include_router(webchat_router)
    app.state.runtime = rt
    return app


@pytest.fixture
def webchat(rt: Runtime) -> WebchatChannel:
    channel = WebchatChannel(TEST_CONFIG)
    rt.channels["webchat"] = channel
    return channel


@pytest.fixture
async def base_url(rt: Runtime, webchat: WebchatChannel) -> AsyncIterator[str]:
    async with serve(webchat_app(rt)) as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as c:
        yield c


class Socket:
    """A visitor's socket with helpers to read frames, skipping what a test ignores."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, wait_s: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(wait_s):
            frame: dict[str, Any] = json.loads(await self.ws.recv())
        self.frames.append(frame)
        return frame

    async def until(
        self, pred: Callable[[dict[str, Any]], bool], wait_s: float = 5.0
    ) -> dict[str, Any]:
        async with asyncio.timeout(wait_s):
            while True:
                frame = await self.recv(wait_s)
                if pred(frame):
                    return frame

    async def quiet(self, seconds: float = 0.6) -> list[dict[str, Any]]:
        """Every frame that arrives within `seconds` (to assert nothing unexpected comes)."""
        got: list[dict[str, Any]] = []
        try:
            while True:
                got.append(await self.recv(seconds))
        except TimeoutError:
            return got

    async def closed(self, wait_s: float = 5.0) -> tuple[int, str]:
        """Read until the server closes; the close code and reason."""
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(self._drain(), wait_s)
        rcvd = info.value.rcvd
        assert rcvd is not None, "closed without a close frame"
        return rcvd.code, rcvd.reason

    async def _drain(self) -> None:
        while True:
            await self.ws.recv()

    async def close(self) -> None:
        await self.ws.close()


def ws_url(base_url: str, token: str, since: int | None = None) -> str:
    url = base_url.replace("http://", "ws://") + f"/webchat/ws?token={token}"
    return url + (f"&since={since}" if since is not None else "")


class Visitor:
    def __init__(self, http: httpx.AsyncClient, base_url: str, token: str, visitor_id: str):
        self.http = http
        self.base_url = base_url
        self.token = token
        self.visitor_id = visitor_id
        self._open: list[Socket] = []

    async def socket(self, since: int | None = None, origin: str | None = None) -> Socket:
        ws = await connect(ws_url(self.base_url, self.token, since), origin=origin)  # type: ignore[arg-type]
        sock = Socket(ws)
        self._open.append(sock)
        return sock

    async def aclose(self) -> None:
        for s in self._open:
            await s.close()


@pytest.fixture
async def new_visitor(http: httpx.AsyncClient, base_url: str) -> AsyncIterator[Callable[..., Any]]:
    made: list[Visitor] = []

    async def make(**body: Any) -> Visitor:
        r = await http.post("/webchat/sessions", json=body)
        assert r.status_code == 201, r.text
        data = r.json()
        v = Visitor(http, base_url, data["token"], data["visitor_id"])
        made.append(v)
        return v

    yield make
    for v in made:
        await v.aclose()


def is_type(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("type") == kind
