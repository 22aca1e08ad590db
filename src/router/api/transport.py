"""Gives WebSocket handlers a way to drop a connection whose peer stopped reading.

ASGI has no "abort": a close is one more frame queued behind everything the peer has not
read, and a server waits for its write buffer to drain before it accepts another frame. This
middleware, outermost, finds the server's transport behind `send` (uvicorn's protocol object)
and leaves it in the scope; `abort` drops the connection at once. Servers that expose no
transport get no abort (the handler still returns; only the TCP connection lingers).
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

TRANSPORT_KEY = "careline.transport"


class TransportMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if callable(getattr(transport, "abort", None)):
                scope[TRANSPORT_KEY] = transport
        await self.app(scope, receive, send)


def abort(scope: Scope) -> bool:
    """Drop the connection now (unsent data is discarded); whether there was one to drop."""
    transport: Any = scope.get(TRANSPORT_KEY)
    if transport is None or transport.is_closing() and not transport.get_write_buffer_size():
        return False
    transport.abort()
    return True
