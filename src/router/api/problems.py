"""RFC 9457 problem+json for every error, including validation and unexpected ones."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from router.db import is_unavailable
from router.errors import RouterError

log = logging.getLogger(__name__)
MEDIA = "application/problem+json"


def problem(
    status: int, title: str, detail: str | None = None, type_: str = "about:blank", **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    headers = {}
    if status == 503:
        headers["Retry-After"] = "5"
    return JSONResponse(body, status_code=status, media_type=MEDIA, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(RouterError)
    async def _router_error(_req: Request, exc: RouterError) -> JSONResponse:
        return problem(exc.status_code, exc.title, exc.detail, exc.type, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        # Report where and what, never the offending input (it may be a message body).
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(first['loc'])}: {first['msg']}"
        return problem(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(ValidationError)
    async def _inbound_invalid(_req: Request, exc: ValidationError) -> JSONResponse:
        # A channel's input that cannot become an `InboundMessage` (an impossible date, JSON
        # nested too deep) is the sender's fault: a 4xx, which providers do not retry.
        if exc.title not in ("InboundMessage", "Sender", "AttachmentRef"):
            return _unavailable_or_500(exc)
        where = [".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()]
        detail = f"unusable input: {', '.join(w for w in where if w) or 'message'}"
        return problem(422, "Invalid request", detail)

    @app.exception_handler(RecursionError)
    async def _too_deep(_req: Request, _exc: RecursionError) -> JSONResponse:
        return problem(400, "Bad request", "the request body is nested too deep")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized"}
        return problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail))

    @app.exception_handler(ClientDisconnect)
    async def _gone(_req: Request, _exc: ClientDisconnect) -> JSONResponse:
        # The client hung up while sending its body: nothing was stored and nobody reads the
        # answer. Not a server error (no ERROR log); a provider that cared will retry.
        log.info("client disconnected before its request body arrived")
        return problem(400, "Client disconnected", "the request body was not received")

    # Registered for the exact types (not only via `Exception`): Starlette re-raises whatever
    # reaches the catch-all handler, so an outage would log a traceback per request.
    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(OSError)
    async def _database(_req: Request, exc: Exception) -> JSONResponse:
        return _unavailable_or_500(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        return _unavailable_or_500(exc)


def _unavailable_or_500(exc: Exception) -> JSONResponse:
    """A database outage is a 503 with Retry-After (webhook senders retry it), never a 500:
    the error reached us from a query or a connect, wherever in the request it happened."""
    if is_unavailable(exc):
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        return problem(503, "Service unavailable", "the database is unavailable; retry later")
    log.error("unhandled error", exc_info=exc)
    return problem(500, "Internal error", "an unexpected error occurred; it has been logged")
