"""Console pages and sign-in: `/console` (static files) and `/console/api/*` (session)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from models import Agent
from router.api.deps import RuntimeDep, SessionDep
from router.api.problems import problem
from router.api.ratelimit import TokenBuckets
from router.console import auth
from router.console.settings import ConsoleSettings
from router.errors import NotFound
from router.flows.agents import open_counts
from router.flows.agents import read as agent_read

STATIC = Path(__file__).parent / "static"
FILES = {
    "console.js": "text/javascript",
    "console.css": "text/css",
    "i18n.js": "text/javascript",
}
# Nothing but this origin: scripts, styles, fetches and the event stream (issue 16: no request
# to any other host at run time).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

api_router = APIRouter(tags=["console"])


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=auth.MAX_PASSWORD)


class InvitationAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=8, max_length=200, pattern=r"^[A-Za-z0-9_\-]+$")
    password: str = Field(min_length=1, max_length=auth.MAX_PASSWORD)


class SessionRead(BaseModel):
    agent: dict[str, Any]
    csrf_token: str
    expires_at: datetime
    idle_timeout_s: int
    presence_grace_s: int


def _cfg(request: Request) -> ConsoleSettings:
    return auth.console_settings(request)


def _secure(request: Request, rt: RuntimeDep) -> bool:
    mode = _cfg(request).secure_cookie
    if mode in ("always", "never"):
        return mode == "always"
    return request.url.scheme == "https" or rt.settings.public_url.startswith("https://")


def _login_buckets(request: Request) -> TokenBuckets:
    state = request.app.state
    buckets = getattr(state, "console_login_buckets", None)
    if not isinstance(buckets, TokenBuckets):
        cfg = _cfg(request)
        buckets = TokenBuckets(cfg.logins_per_min, cfg.logins_burst)
        state.console_login_buckets = buckets
    return buckets


async def _session_read(
    session: SessionDep, request: Request, sid: str, agent: Agent, expires_at: datetime
) -> SessionRead:
    loads = await open_counts(session)
    cfg = _cfg(request)
    return SessionRead(
        agent=agent_read(agent, loads.get(agent.id, 0)).model_dump(mode="json"),
        csrf_token=auth.csrf_for(sid),
        expires_at=expires_at,
        idle_timeout_s=cfg.session_idle_s,
        presence_grace_s=cfg.presence_grace_s,
    )


@api_router.get("/console", include_in_schema=False)
async def console_root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=308)


@api_router.get("/console/", include_in_schema=False)
async def console_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@api_router.get("/console/static/{name}", include_in_schema=False)
async def console_static(name: str) -> FileResponse:
    media = FILES.get(name)
    if media is None:
        raise NotFound(f"no console file {name}")
    return FileResponse(STATIC / name, media_type=media, headers=PAGE_HEADERS)


@api_router.post("/console/api/session", response_model=SessionRead)
async def sign_in(
    body: LoginBody, request: Request, rt: RuntimeDep, session: SessionDep
) -> Response:
    """Sign in with e-mail and password. Rate-limited per client address; an account is
    locked for a while after repeated wrong passwords. The answer sets an HttpOnly,
    SameSite=Strict session cookie and carries the CSRF token for writes."""
    client = request.client.host if request.client else "unknown"
    wait = _login_buckets(request).take("ip:" + client)
    if wait > 0:
        r = problem(429, "Too many sign-in attempts", "too many sign-in attempts; retry later")
        r.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return r
    cfg = _cfg(request)
    now = rt.now()
    # Failures are answered, not raised: the unit of work then commits the failure count.
    result = await auth.check_login(session, cfg, body.email, body.password, now)
    if result.locked_for_s > 0:
        r = problem(
            429,
            "Account locked",
            "too many wrong passwords for this account; try again later or ask a supervisor "
            "for a new invitation link",
        )
        r.headers["Retry-After"] = str(max(1, math.ceil(result.locked_for_s)))
        return r
    if result.agent is None:
        return problem(401, "Unauthorized", "wrong e-mail or password")
    sid, row = await auth.open_session(session, cfg, result.agent, now)
    data = await _session_read(session, request, sid, result.agent, row.expires_at)
    response = JSONResponse(data.model_dump(mode="json"), headers={"Cache-Control": "no-store"})
    secure = _secure(request, rt)
    response.set_cookie(
        auth.SECURE_COOKIE if secure else auth.COOKIE,
        sid,
        max_age=cfg.session_absolute_s,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    return response


@api_router.get("/console/api/session", response_model=SessionRead)
async def whoami(request: Request, rt: RuntimeDep, session: SessionDep) -> Response:
    """The signed-in agent and the session's CSRF token (after a reload); 401 when expired."""
    sid, row, agent = await auth.current_session(request, rt.now(), session)
    data = await _session_read(session, request, sid, agent, row.expires_at)
    return JSONResponse(data.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@api_router.delete("/console/api/session", status_code=204)
async def sign_out(request: Request, rt: RuntimeDep, session: SessionDep) -> Response:
    """Sign out: the session ends on the server (the cookie alone no longer opens anything)."""
    _sid, row, _agent = await auth.current_session(request, rt.now(), session)
    row.ended_at = rt.now()
    response = Response(status_code=204)
    for name in (auth.COOKIE, auth.SECURE_COOKIE):
        response.delete_cookie(
            name, path="/", secure=name == auth.SECURE_COOKIE, httponly=True, samesite="strict"
        )
    return response


@api_router.post("/console/api/heartbeat", status_code=204)
async def heartbeat(request: Request, rt: RuntimeDep, session: SessionDep) -> Response:
    """The console tab is open: without one for the grace period, online becomes away."""
    _sid, row, _agent = await auth.current_session(request, rt.now(), session)
    row.heartbeat_at = rt.now()
    return Response(status_code=204)


@api_router.post("/console/api/invitations/accept")
async def accept_invitation(
    body: InvitationAccept, rt: RuntimeDep, session: SessionDep
) -> dict[str, str]:
    """Set the password from an invitation link (one-time, expiring); then sign in."""
    agent = await auth.accept_invitation(session, body.token, body.password, rt.now())
    return {"email": agent.email or ""}
