"""A visitor that bursts frames and never reads: the server gives up on the socket within its
send timeout, the visitor's slot is freed and the server still shuts down."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from channels.webchat import WebchatChannel
from models import Message
from router.runtime import Runtime
from tests.integration.channels.webchat.conftest import TEST_CONFIG, is_type, ws_url

# The defaults' sizes and limit (20 per minute, 4,000 characters); a short send timeout.
BURST_CONFIG = dataclasses.replace(
    TEST_CONFIG,
    max_frame_bytes=16 * 1024,
    max_text_chars=4000,
    messages_per_minute=20,
    send_timeout_s=1.0,
)


@pytest.fixture
def webchat(rt: Runtime) -> WebchatChannel:
    channel = WebchatChannel(BURST_CONFIG)
    rt.channels["webchat"] = channel
    return channel


class DeafClient:
    """A real WebSocket client (websockets' protocol over a TCP socket) that, once the
    handshake is done, only writes: nothing the server sends is ever read."""

    def __init__(self, url: str) -> None:
        self.uri = parse_uri(url)
        self.proto = ClientProtocol(self.uri)
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        uri = self.uri
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # what it leaves unread backs up
        s.connect((uri.host, uri.port))
        s.setblocking(False)
        reader, self.writer = await asyncio.open_connection(sock=s)
        self.proto.send_request(self.proto.connect())
        await self._flush()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        self.proto.receive_data(head)
        assert self.proto.handshake_exc is None, self.proto.handshake_exc

    async def send(self, frame: dict[str, Any]) -> None:
        self.proto.send_text(json.dumps(frame).encode())
        await self._flush()

    async def _flush(self) -> None:
        assert self.writer is not None
        self.writer.write(b"".join(self.proto.data_to_send()))
        await asyncio.wait_for(self.writer.drain(), 5)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


async def test_a_burst_from_a_client_that_never_reads_frees_its_slot(
    rt: Runtime, new_visitor: Any, webchat: WebchatChannel, base_url: str
) -> None:
    v = await new_visitor()
    first = await v.socket()
    await first.send({"type": "message", "client_id": "hello", "text": "hello"})
    ack = await first.until(is_type("ack"))
    await first.close()
    # A long history (6 MB): more than the kernel buffers on both ends hold, so replaying it
    # to a client that does not read backs up in the server.
    async with rt.db.session() as session:
        session.add_all(
            Message(
                conversation_id=ack["conversation_id"],
                direction="in",
                channel="webchat",
                kind="text",
                external_id=f"{v.visitor_id}:h{i}",
                text="h" * 4000,
                created_at=rt.now(),
                channel_meta={},
            )
            for i in range(1500)
        )
    deaf = DeafClient(ws_url(base_url, v.token))
    await deaf.connect()
    try:
        for i in range(webchat.config.messages_per_minute + 10):
            await deaf.send({"type": "message", "client_id": f"b{i}", "text": "x" * 3000})
        # The server gives up on a socket it cannot write to: the slot is free in seconds.
        for _ in range(100):
            if not webchat.hub.connections(v.visitor_id):
                break
            await asyncio.sleep(0.05)
        assert webchat.hub.connections(v.visitor_id) == [], "the visitor's socket slot leaked"
        # And the visitor can open as many sockets as before.
        socks = [
            await v.socket(since=ack["id"]) for _ in range(webchat.config.max_sockets_per_visitor)
        ]
        for s in socks:
            await s.until(is_type("status"))
    finally:
        deaf.abort()
