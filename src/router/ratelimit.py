"""Per-caller rate limits (token bucket), answered with 429 and `Retry-After`.

Keys: the bearer token's hash for the API, the client address for webhooks and web chat.
Buckets live in this process: with N instances behind a load balancer a caller gets up to N
times the rate, which still bounds a runaway client or a flood per instance.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from router.api.problems import problem


@dataclass
class Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """`rate_per_min` sustained, bursts up to `burst`; pure apart from the injected clock."""

    def __init__(
        self,
        rate_per_min: float,
        burst: int,
        *,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate_per_min / 60.0
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when allowed; otherwise the seconds until a token is available."""
        now = self.clock()
        b = self._buckets.get(key)
        if b is None:
            b = Bucket(tokens=float(self.burst), updated=now)
            self._buckets[key] = b
            if len(self._buckets) > self.max_keys:  # forget the least recently seen caller
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            b.tokens = min(self.burst, b.tokens + (now - b.updated) * self.rate)
            b.updated = now
        if b.tokens >= 1:
            b.tokens -= 1
            return 0.0
        return (1 - b.tokens) / self.rate


class RateLimitMiddleware:
    """Pure ASGI middleware (no body buffering; WebSocket handshakes pass through)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api: TokenBuckets | None,
        webhooks: TokenBuckets | None,
    ) -> None:
        self.app = app
        self.api = api
        self.webhooks = webhooks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        buckets, key = self._classify(scope, path)
        if buckets is not None:
            wait = buckets.take(key)
            if wait > 0:
                response: Response = problem(
                    429, "Too many requests", "rate limit exceeded; retry later"
                )
                response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _classify(self, scope: Scope, path: str) -> tuple[TokenBuckets | None, str]:
        if path.startswith("/api/"):
            auth = Request(scope).headers.get("authorization", "")
            if auth:
                # Never keep the token itself in memory longer than needed: its hash is the key.
                return self.api, "t:" + hashlib.sha256(auth.encode()).hexdigest()[:32]
            return self.api, "ip:" + _client(scope)
        if path.startswith(("/webhooks/", "/webchat/sessions")):
            return self.webhooks, "ip:" + _client(scope)
        return None, ""


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
