"""FastAPI dependencies: the runtime, one unit of work per request, the caller's principal."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Agent
from models.schemas import MAX_ID
from router.api.ratelimit import remember_token
from router.auth import Principal, hash_token
from router.console.auth import cookie_principal, session_cookie
from router.db import is_unavailable
from router.errors import Forbidden, Unauthorized, Unavailable
from router.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
# An id in a path: out of the 64-bit range is a 422, never a driver overflow.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


async def get_session(rt: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """Commit after the handler returns, before the response is sent: a 2xx means durable."""
    try:
        async with rt.db.session() as session:
            yield session
    except Exception as exc:
        # A database outage must answer 503 so webhook providers retry, never 500.
        if is_unavailable(exc):
            raise Unavailable("the database is unavailable; retry later") from exc
        raise


# scope="function": FastAPI (0.118+) otherwise runs a yield dependency's exit, our commit,
# after the response has gone out, and a 2xx would precede durability.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return token.strip()


async def _principal(
    request: Request, rt: Runtime, session: AsyncSession, *, touch: bool = True
) -> Principal:
    if "authorization" not in request.headers and session_cookie(request):
        # The staff console: a server-side session cookie, CSRF-checked on writes.
        return await cookie_principal(request, rt.now(), session, touch=touch)
    token = _bearer(request)
    admin = rt.settings.admin_token
    if (
        admin is not None
        and admin.get_secret_value()
        and secrets.compare_digest(token.encode(), admin.get_secret_value().encode())
    ):
        return Principal(role="admin", agent_id=None, tier=2, name="admin")
    agent = await session.scalar(
        select(Agent).where(Agent.token_hash == hash_token(token), Agent.active.is_(True))
    )
    if agent is None:
        raise Unauthorized("invalid or revoked token")
    return Principal(role=agent.role, agent_id=agent.id, tier=agent.tier, name=agent.name)


async def get_principal(request: Request, rt: RuntimeDep, session: SessionDep) -> Principal:
    """The caller, looked up in the request's own unit of work."""
    p = await _principal(request, rt, session)
    remember_token(request, p.role)
    return p


async def get_stream_principal(request: Request, rt: RuntimeDep) -> Principal:
    """For long-lived streams: a short unit of work of its own, so no transaction (and, on
    SQLite, no write slot) is held for the life of the connection."""
    async with rt.db.session() as session:
        p = await _principal(request, rt, session)
    remember_token(request, p.role)
    return p


async def still_valid(request: Request, rt: Runtime, session: AsyncSession, p: Principal) -> bool:
    """Whether the stream's caller is still who it was when it connected: a deactivated agent,
    a rotated or revoked token, or a changed role or tier ends the stream."""
    try:
        return await _principal(request, rt, session, touch=False) == p
    except Unauthorized:
        return False


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    async def dep(p: PrincipalDep) -> Principal:
        if p.role not in roles:
            raise Forbidden(f"role {p.role} may not do this (needs one of: {', '.join(roles)})")
        return p

    return dep


AGENTS = ("agent_l1", "agent_l2", "supervisor", "admin")


async def require_stream_agent(
    p: Annotated[Principal, Depends(get_stream_principal)],
) -> Principal:
    if p.role not in AGENTS:
        raise Forbidden(f"role {p.role} may not do this (needs one of: {', '.join(AGENTS)})")
    return p


StreamAgentDep = Annotated[Principal, Depends(require_stream_agent)]
AgentDep = Annotated[Principal, Depends(require(*AGENTS))]
ManagerDep = Annotated[Principal, Depends(require("supervisor", "admin"))]
IntegrationDep = Annotated[Principal, Depends(require("integration", "admin"))]
