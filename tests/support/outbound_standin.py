"""A stand-in for the far end of the outbound channels (the app's callback URL and the
Telegram Bot API) on 127.0.0.1, told per channel to answer, fail with 500, hang, or trickle.

A bare asyncio HTTP/1.1 server, one request per connection (`Connection: close`), so a test
sees exactly what the client does: every request still waiting for its answer is in
`inflight`, and a client that gives up (its timeout fired) shows as the connection closing
under a held request (`outcome == "abandoned"`). Each call records when it started and ended
on one shared counter, so tests compare orderings ("B was answered while A still hung")
instead of durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

Channel = Literal["app", "telegram"]
Mode = Literal["ok", "fail", "hang", "trickle"]
APP_PATH = "/app/callback"


@dataclass(eq=False)
class Call:
    channel: Channel
    method: str  # the Bot API method, or "callback" for the app
    key: str  # app: the outbox message_id; Telegram: the chat_id
    started: int
    ended: int | None = None
    outcome: Literal["open", "ok", "fail", "abandoned"] = "open"

    def open_at(self, seq: int) -> bool:
        """Was this call still waiting for its answer at event `seq`?"""
        return self.started < seq and (self.ended is None or self.ended > seq)


class OutboundStandIn:
    def __init__(self, *, trickle_interval_s: float = 1.0, trickle_bytes: int = 600) -> None:
        self.modes: dict[Channel, Mode] = {"app": "ok", "telegram": "ok"}
        self.calls: list[Call] = []
        self.base = ""
        self.trickle_interval_s = trickle_interval_s
        self.trickle_bytes = trickle_bytes
        self._seq = itertools.count(1)
        self._changed: dict[Channel, asyncio.Event] = {
            "app": asyncio.Event(),
            "telegram": asyncio.Event(),
        }
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._message_ids = itertools.count(7000)

    # -- what tests use ---------------------------------------------------------------------

    @property
    def app_url(self) -> str:
        return self.base + APP_PATH

    def set_mode(self, channel: Channel, mode: Mode) -> None:
        """Switch a channel; requests it is holding are answered by the new mode at once."""
        self.modes[channel] = mode
        released, self._changed[channel] = self._changed[channel], asyncio.Event()
        released.set()

    def now(self) -> int:
        """A point on the call-ordering counter (see `Call.open_at`)."""
        return next(self._seq)

    @property
    def inflight(self) -> list[Call]:
        return [c for c in self.calls if c.outcome == "open"]

    def of(self, channel: Channel, *, outcome: str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.channel == channel and (outcome is None or c.outcome == outcome)
        ]

    def delivered(self, channel: Channel) -> set[str]:
        return {c.key for c in self.of(channel, outcome="ok")}

    # -- server -----------------------------------------------------------------------------

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        return self.base

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        call: Call | None = None
        try:
            call = await self._read(reader)
            if call is not None:
                self.calls.append(call)
                call.outcome = await self._answer(call, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            if call is not None:
                call.outcome = "abandoned"
        finally:
            if call is not None and call.ended is None:
                call.ended = self.now()
                if call.outcome == "open":
                    call.outcome = "abandoned"  # cancelled at stop()
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> Call | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        _verb, path, _version = lines[0].split(" ", 2)
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int((await reader.readuntil(b"\r\n")).strip() or b"0", 16):
                body += await reader.readexactly(size)
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        started = self.now()
        if path == APP_PATH:
            payload = json.loads(body or b"{}")
            return Call("app", "callback", str(payload.get("message_id")), started)
        if path.startswith("/bot"):
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            return Call("telegram", path.rsplit("/", 1)[-1], form.get("chat_id", ""), started)
        return Call("app", "unknown", path, started)

    async def _answer(
        self, call: Call, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Literal["ok", "fail", "abandoned"]:
        while True:
            mode = self.modes[call.channel]
            changed = self._changed[call.channel]
            if mode == "ok":
                await self._respond(writer, 200, self._ok_body(call))
                call.ended = self.now()
                return "ok"
            if mode == "fail":
                await self._respond(writer, 500, self._fail_body(call))
                call.ended = self.now()
                return "fail"
            if mode == "trickle":
                return await self._trickle(call, reader, writer)
            # hang: hold the request until the client gives up or the mode changes
            if await _client_gone(reader, changed.wait()):
                return "abandoned"

    async def _trickle(
        self, call: Call, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Literal["ok", "abandoned"]:
        """200 and headers at once, then the body one byte per interval: every single read
        is quick, so only an overall deadline on the client ends it."""
        body = b" " * self.trickle_bytes + self._ok_body(call)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        for i in range(len(body)):
            if self.modes[call.channel] != "trickle":
                writer.write(body[i:])
                await writer.drain()
                break
            writer.write(body[i : i + 1])
            await writer.drain()
            if i == len(body) - 1:
                break  # complete: the client now hangs up, as it should
            if await _client_gone(reader, asyncio.sleep(self.trickle_interval_s)):
                return "abandoned"
        call.ended = self.now()
        return "ok"

    async def _respond(self, writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        reason = "OK" if status == 200 else "Internal Server Error"
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n".encode()
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    def _ok_body(self, call: Call) -> bytes:
        if call.channel == "app":
            return b'{"ok": true}'
        result: Any = True
        if call.method.lower() == "sendmessage":
            result = {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": {"id": int(call.key), "type": "private", "first_name": "Customer"},
                "text": "ok",
            }
        return json.dumps({"ok": True, "result": result}).encode()

    def _fail_body(self, call: Call) -> bytes:
        if call.channel == "app":
            return b'{"error": "stand-in failure"}'
        return b'{"ok": false, "error_code": 500, "description": "Internal Server Error"}'


async def _client_gone(reader: asyncio.StreamReader, other: Awaitable[Any]) -> bool:
    """Wait for `other` or for the client to close its end; True if the client went away."""
    eof = asyncio.ensure_future(reader.read(1))
    waiter = asyncio.ensure_future(other)
    done, pending = await asyncio.wait({eof, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for p in pending:
        p.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if eof in done:
        eof.exception()  # retrieved: a reset is just another way of hanging up
        return True  # a client sends nothing after its request: any read result is EOF
    return False
