"""Web chat input that used to give 500s or kill the socket: NUL in a message, deep JSON."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from models import Message
from router.runtime import Runtime
from tests.integration.channels.webchat.conftest import is_type

DEEP = "[" * 3000 + "]" * 3000  # a few kilobytes, deeper than json.loads recurses


async def test_a_message_with_nul_is_stored_and_acknowledged(rt: Runtime, new_visitor: Any) -> None:
    # Unacknowledged, the widget would keep it in its outbox and resend it forever.
    v = await new_visitor(name="Lu\x00cía")
    sock = await v.socket()
    await sock.send({"type": "message", "client_id": "c1", "text": "Hola\x00 doctor"})
    ack = await sock.until(is_type("ack"))
    assert ack["id"]
    await sock.close()
    async with rt.db.session() as s:
        msg = await s.get(Message, int(ack["id"]))
        assert msg is not None
        assert msg.text == "Hola doctor"


async def test_deeply_nested_session_body_is_a_4xx(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/webchat/sessions",
        content='{"name": ' + DEEP + "}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text


async def test_deeply_nested_frame_closes_with_4400(new_visitor: Any, rt: Runtime) -> None:
    v = await new_visitor()
    sock = await v.socket()
    deep = "[" * 500 + "]" * 500  # inside the tests' 2 KiB frame limit (16 KiB by default)
    await sock.send('{"type": "message", "text": "x", "extra": ' + deep + "}")
    code, _ = await sock.closed()
    assert code == 4400
    async with rt.db.session() as s:
        assert list(await s.scalars(select(Message.id))) == []
