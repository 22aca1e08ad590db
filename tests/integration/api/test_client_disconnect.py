"""A client that hangs up mid-body is not a server error: no 500, no ERROR log, nothing stored.
(Seen under benchmark load on /webchat/sessions; any endpoint reading a body can meet it.)"""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from models import Message
from router.api import create_app
from router.runtime import Runtime
from tests.support import asgi


@pytest.mark.parametrize("path", ["/webhooks/calls", "/api/v1/inbound"])
async def test_hang_up_mid_body(rt: Runtime, path: str, caplog: pytest.LogCaptureFixture) -> None:
    rt.settings = rt.settings.model_copy(update={"webhook_secret": SecretStr("s" * 32)})
    app = create_app(runtime=rt)
    app.state.runtime = rt
    with caplog.at_level(logging.INFO):
        statuses = await asgi.post(app, path, [b'{"contact": {'], complete=False)
    assert statuses == [400]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    async with rt.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
