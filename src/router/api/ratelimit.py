"""Per-caller rate limits (token bucket), answered with 429 and `Retry-After`.

Keys: for the API, a token's (or console session cookie's) hash once it has authenticated in
this process (an integration token, one back-end forwarding every customer, gets buckets of
its own and a higher rate); a request with no token or one not known to be valid is keyed by
the client address, so rotating junk tokens buys no fresh buckets. Webhooks and web chat:
the address.
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
from router.console.auth import COOKIE, SECURE_COOKIE


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


def token_key(authorization: str) -> str:
    # Never keep the token itself in memory longer than needed: its hash is the key.
    return "t:" + hashlib.sha256(authorization.encode()).hexdigest()[:32]


class KnownTokens:
    """Token keys that authenticated, with their role (most recent first out when full).
    Filled by the auth dependency; read by the middleware on the next request."""

    def __init__(self, max_keys: int = 50_000) -> None:
        self.max_keys = max_keys
        self._roles: OrderedDict[str, str] = OrderedDict()

    def remember(self, key: str, role: str) -> None:
        self._roles[key] = role
        self._roles.move_to_end(key)
        if len(self._roles) > self.max_keys:
            self._roles.popitem(last=False)

    def role(self, key: str) -> str | None:
        return self._roles.get(key)


STATE_KEY = "careline_known_tokens"


class RateLimitMiddleware:
    """Pure ASGI middleware (no body buffering; WebSocket handshakes pass through)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api: TokenBuckets | None,
        webhooks: TokenBuckets | None,
        integration: TokenBuckets | None = None,
        known: KnownTokens | None = None,
    ) -> None:
        self.app = app
        self.api = api
        self.webhooks = webhooks
        self.integration = integration
        self.known = known or KnownTokens()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The auth dependency records tokens that authenticate here (`remember_token`).
        scope.setdefault("state", {})[STATE_KEY] = self.known
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
        if key.startswith("ip:") and path.startswith("/api/"):
            # A token that just authenticated: this request counts in its own buckets too,
            # so its first request is not a free one.
            auth = credential(Request(scope))
            role = self.known.role(token_key(auth)) if auth else None
            own = self.integration if role == "integration" and self.integration else self.api
            if role is not None and own is not None:
                own.take(token_key(auth))

    def _classify(self, scope: Scope, path: str) -> tuple[TokenBuckets | None, str]:
        if path.startswith("/api/"):
            auth = credential(Request(scope))
            key = token_key(auth) if auth else ""
            role = self.known.role(key) if key else None
            if role == "integration" and self.integration is not None:
                return self.integration, key
            if role is not None:
                return self.api, key
            return self.api, "ip:" + _client(scope)
        if path.startswith(("/webhooks/", "/webchat/sessions")):
            return self.webhooks, "ip:" + _client(scope)
        return None, ""


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def credential(request: Request) -> str:
    """The caller's bearer header, else its console session cookie: each signed-in agent gets
    buckets of their own, not the shared ones of their (perhaps NAT-ed) address."""
    auth = request.headers.get("authorization", "")
    if auth:
        return auth
    sid = request.cookies.get(SECURE_COOKIE) or request.cookies.get(COOKIE)
    return "console " + sid if sid else ""


def remember_token(request: Request, role: str) -> None:
    """Called once a bearer token authenticated: later requests get that token's buckets."""
    known = getattr(request.state, STATE_KEY, None)
    auth = credential(request)
    if isinstance(known, KnownTokens) and auth:
        known.remember(token_key(auth), role)
