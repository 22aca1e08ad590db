"""In-process registry of open visitor sockets: who is connected here, and how to wake them.

The hub carries no messages. The database is the only source of what a visitor sees: a socket
that is woken re-reads its visitor's feed after its last id, so a wake-up that is lost, comes
twice or comes from another instance's poll can never reorder, drop or duplicate a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any


class SendTimeout(Exception):
    """The visitor did not take a frame within the send timeout: they stopped reading."""


class Connection:
    """One open socket: a wake-up flag and serialised sends (two tasks write to it), each
    bounded by `send_timeout_s` (waiting for the lock included): a client that stops reading
    fills the server's write buffer, and an unbounded send would then wait forever."""

    def __init__(
        self,
        visitor_id: str,
        send_text: Callable[[str], Awaitable[None]],
        send_timeout_s: float = 10.0,
    ) -> None:
        self.visitor_id = visitor_id
        self._send_text = send_text
        self.send_timeout_s = send_timeout_s
        self._lock = asyncio.Lock()
        self._woken = asyncio.Event()

    async def send(self, frame: dict[str, Any]) -> None:
        text = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
        try:
            async with asyncio.timeout(self.send_timeout_s), self._lock:
                await self._send_text(text)
        except TimeoutError:
            raise SendTimeout(f"frame not taken within {self.send_timeout_s} s") from None

    def wake(self) -> None:
        self._woken.set()

    async def wait(self, seconds: float) -> bool:
        """Sleep until woken or `seconds` pass; True when woken."""
        woken = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), seconds)
            woken = True
        self._woken.clear()
        return woken


class RateLimiter:
    """Sliding one-minute window of events per visitor (per instance)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, per_minute: int) -> bool:
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - 60.0:
            hits.popleft()
        if len(hits) >= per_minute:
            return False
        hits.append(now)
        return True

    def forget_idle(self, key: str) -> None:
        hits = self._hits.get(key)
        if hits is not None and (not hits or hits[-1] <= self._clock() - 60.0):
            del self._hits[key]


class Hub:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._sockets: dict[str, set[Connection]] = {}
        self.messages = RateLimiter(clock)
        self.typing = RateLimiter(clock)

    def register(self, conn: Connection, max_sockets: int) -> bool:
        """Add a socket unless its visitor already has `max_sockets` open here."""
        conns = self._sockets.setdefault(conn.visitor_id, set())
        if len(conns) >= max_sockets:
            return False
        conns.add(conn)
        return True

    def unregister(self, conn: Connection) -> None:
        conns = self._sockets.get(conn.visitor_id)
        if conns is None:
            return
        conns.discard(conn)
        if not conns:
            del self._sockets[conn.visitor_id]
            # Keep a visitor's recent hits: reconnecting must not reset the rate limit.
            self.messages.forget_idle(conn.visitor_id)
            self.typing.forget_idle(conn.visitor_id)

    def connections(self, visitor_id: str) -> list[Connection]:
        return list(self._sockets.get(visitor_id, ()))

    def wake(self, visitor_id: str) -> int:
        """Ask the visitor's sockets on this instance to re-read their feed."""
        conns = self.connections(visitor_id)
        for conn in conns:
            conn.wake()
        return len(conns)

    async def push(self, visitor_id: str, frame: dict[str, Any]) -> int:
        """Send an ephemeral frame (typing) to the visitor's sockets here; never stored."""
        sent = 0
        for conn in self.connections(visitor_id):
            with contextlib.suppress(Exception):  # a closing socket must not fail the others
                await conn.send(frame)
                sent += 1
        return sent

    def visitors_online(self) -> int:
        return len(self._sockets)
