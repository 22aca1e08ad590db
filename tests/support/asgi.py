"""Drive the ASGI app by hand, for what an HTTP client cannot show: the moment the response
starts, or a client hanging up halfway through its body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from tests.conftest import ADMIN_TOKEN


async def post(
    app: FastAPI,
    path: str,
    chunks: list[bytes],
    *,
    complete: bool = True,
    on_start: Callable[[int], Awaitable[None]] | None = None,
) -> list[int]:
    """POST `chunks` as the body (with Content-Length when `complete`; else the client hangs
    up after the last chunk). Calls `on_start(status)` as the response starts; returns the
    statuses sent."""
    headers = [
        (b"host", b"careline.test"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {ADMIN_TOKEN}".encode()),
    ]
    if complete:
        headers.append((b"content-length", str(sum(map(len, chunks))).encode()))
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
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("careline.test", 80),
        "state": {},
    }
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        if pending:
            body = pending.pop(0)
            return {
                "type": "http.request",
                "body": body,
                "more_body": bool(pending) or not complete,
            }
        return {"type": "http.disconnect"}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
            if on_start is not None:
                await on_start(message["status"])

    await app(scope, receive, send)
    return statuses
