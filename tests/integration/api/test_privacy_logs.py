"""No message text, token or secret reaches the logs, even at DEBUG and on failures."""

from __future__ import annotations

import io
import logging

import httpx

from channels.base import DeliveryError
from router.logs import configure
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.conftest import ADMIN, ADMIN_TOKEN, auth, make_agent
from tests.support.fakes import FakeChannel

SECRET_TEXT = "my-hiv-test-result-7f3a9c"
REPLY_TEXT = "your-results-are-ready-b81e"


async def test_logs_never_contain_bodies_or_tokens(
    client: httpx.AsyncClient,
    rt: Runtime,
    fake_app_channel: FakeChannel,
) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure("DEBUG", stream)  # the service's own logging, at its most verbose
    try:
        await _exercise(client, rt, fake_app_channel)
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    logged = stream.getvalue()
    assert '"level": "WARNING"' in logged, "failures are logged"
    assert "dead-lettered" in logged
    for needle in (SECRET_TEXT, REPLY_TEXT, ADMIN_TOKEN, *_tokens):
        assert needle not in logged


_tokens: list[str] = []


async def _exercise(client: httpx.AsyncClient, rt: Runtime, fake_app_channel: FakeChannel) -> None:
    _, token = await make_agent(rt, name="dr", role="agent_l2")
    _tokens.append(token)
    body = {"contact": {"external_id": "u1"}, "message": {"external_id": "m1", "text": SECRET_TEXT}}
    r = await client.post("/api/v1/inbound", json=body, headers=ADMIN)
    assert r.status_code == 200
    await client.post("/api/v1/inbound", json=body, headers=ADMIN)  # duplicate path
    await client.post("/api/v1/inbound", json={**body, "extra": SECRET_TEXT}, headers=ADMIN)  # 422
    await client.get("/api/v1/conversations", headers=auth(token + "x"))  # bad token
    cid = r.json()["conversation_id"]
    await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"text": REPLY_TEXT}, headers=auth(token)
    )
    fake_app_channel.script = [
        DeliveryError("upstream 500", retryable=False),
        DeliveryError("upstream 500", retryable=False),
    ]
    await OutboxWorker(rt).run_once()


def test_web_chat_frames_and_sse_chunks_stay_out_of_debug_logs() -> None:
    # What uvicorn (WebSocket frames, on "uvicorn.error") and sse-starlette (event chunks,
    # routing reasons quoting the patient) log at DEBUG.
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure("DEBUG", stream)
    try:
        logging.getLogger("uvicorn.error").debug("< TEXT '%s' [40 bytes]", SECRET_TEXT)
        logging.getLogger("sse_starlette.sse").debug("chunk: %s", SECRET_TEXT)
        logging.getLogger("websockets.server").debug("> TEXT %s", SECRET_TEXT)
        logging.getLogger("uvicorn.error").info("Application startup complete.")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    logged = stream.getvalue()
    assert SECRET_TEXT not in logged
    assert "Application startup complete." in logged
