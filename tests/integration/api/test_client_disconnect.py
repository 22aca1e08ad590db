"""A client that hangs up mid-body is not a server error: no 500, no ERROR log, nothing stored.
(Seen under benchmark load on /webchat/sessions; any endpoint reading a body can meet it.)"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from models import Message
from router.api import create_app
from router.runtime import Runtime
from tests.conftest import ADMIN_TOKEN


@pytest.mark.parametrize("path", ["/webhooks/calls", "/api/v1/inbound"])
async def test_hang_up_mid_body(rt: Runtime, path: str, caplog: pytest.LogCaptureFixture) -> None:
    rt.settings = rt.settings.model_copy(update={"webhook_secret": SecretStr("s" * 32)})
    app = create_app(runtime=rt)
    app.state.runtime = rt
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"careline.test"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {ADMIN_TOKEN}".encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("careline.test", 80),
        "state": {},
    }
    chunks = [{"type": "http.request", "body": b'{"contact": {', "more_body": True}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)
    assert statuses == [400]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    async with rt.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
