"""Passwords (argon2id), invitations, server-side sessions and their CSRF tokens.

Why argon2-cffi: Argon2id is the OWASP and RFC 9106 recommendation for passwords (memory-hard,
so a stolen hash is slow to crack on GPUs) and argon2-cffi is the maintained binding, with
parameters that can be raised later (`check_needs_rehash`).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from models import Agent, StaffCredential, StaffInvitation, StaffSession
from router.auth import AGENT_ROLES, Principal
from router.console.settings import ConsoleSettings, get_console_settings
from router.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized

COOKIE = "careline_session"
# With HTTPS the cookie gets the __Host- prefix: Secure, Path=/, no Domain, so no sibling
# subdomain can set or shadow it.
SECURE_COOKIE = "__Host-careline_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MIN_PASSWORD = 12
MAX_PASSWORD = 256

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so timing does not tell which addresses exist.
_DUMMY_HASH = _hasher.hash("careline-no-such-account")


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def csrf_for(session_id: str) -> str:
    """The session's CSRF token: derived from the cookie value, which a page on another site
    can neither read nor guess, so a forged request cannot carry it."""
    return hashlib.sha256(b"careline csrf v1:" + session_id.encode()).hexdigest()


def console_settings(conn: HTTPConnection) -> ConsoleSettings:
    cfg = getattr(conn.app.state, "console_settings", None)
    return cfg if isinstance(cfg, ConsoleSettings) else get_console_settings()


def session_cookie(conn: HTTPConnection) -> str | None:
    return conn.cookies.get(SECURE_COOKIE) or conn.cookies.get(COOKIE)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"the password may have at most {MAX_PASSWORD} characters")


async def hash_password(password: str) -> str:
    # argon2 takes ~50 ms of CPU and 64 MiB: off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


# --- invitations -------------------------------------------------------------------------


def invitation_url(public_url: str, token: str) -> str:
    # In the fragment: browsers never send it to a server, nor in a Referer.
    return f"{public_url.rstrip('/')}/console/#/invite/{token}"


async def create_invitation(
    session: AsyncSession,
    agent: Agent,
    now: datetime,
    *,
    ttl_s: int,
    by_agent_id: int | None = None,
) -> tuple[str, datetime]:
    """A one-time link that sets the agent's password; earlier unused links stop working."""
    if agent.role not in AGENT_ROLES:
        raise InvalidInput(f"a {agent.role} account does not sign in to the console")
    if not agent.active:
        raise NotFound(f"agent {agent.id} not found")
    if not agent.email:
        raise InvalidInput("the agent has no e-mail address to sign in with")
    clash = await session.scalar(
        select(func.count())
        .select_from(Agent)
        .where(
            func.lower(Agent.email) == agent.email.lower(),
            Agent.active.is_(True),
            Agent.id != agent.id,
        )
    )
    if clash:
        raise Conflict(f"another active agent already signs in as {agent.email}")
    await session.execute(
        update(StaffInvitation)
        .where(StaffInvitation.agent_id == agent.id, StaffInvitation.used_at.is_(None))
        .values(used_at=now)
    )
    token = "inv_" + secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=ttl_s)
    session.add(
        StaffInvitation(
            agent_id=agent.id,
            token_hash=_sha(token),
            expires_at=expires,
            created_by_id=by_agent_id,
            created_at=now,
        )
    )
    await session.flush()
    return token, expires


async def accept_invitation(
    session: AsyncSession, token: str, password: str, now: datetime
) -> Agent:
    """Set the password from a valid link; the link is spent and every open session ends."""
    check_password_rules(password)
    inv = await session.scalar(
        select(StaffInvitation).where(StaffInvitation.token_hash == _sha(token))
    )
    if inv is None or inv.used_at is not None or inv.expires_at <= now:
        raise NotFound("this invitation link is unknown, used or expired; ask for a new one")
    agent = await session.get(Agent, inv.agent_id)
    if agent is None or not agent.active or agent.role not in AGENT_ROLES:
        raise NotFound("this invitation link is unknown, used or expired; ask for a new one")
    inv.used_at = now
    await set_password(session, agent, password, now)
    return agent


async def set_password(session: AsyncSession, agent: Agent, password: str, now: datetime) -> None:
    check_password_rules(password)
    hashed = await hash_password(password)
    cred = await session.scalar(select(StaffCredential).where(StaffCredential.agent_id == agent.id))
    if cred is None:
        session.add(
            StaffCredential(
                agent_id=agent.id,
                password_hash=hashed,
                password_set_at=now,
                failed_logins=0,
                created_at=now,
            )
        )
    else:
        cred.password_hash = hashed
        cred.password_set_at = now
        cred.failed_logins = 0
        cred.locked_until = None
    await end_sessions(session, agent.id, now)
    await session.flush()


async def end_sessions(session: AsyncSession, agent_id: int, now: datetime) -> None:
    await session.execute(
        update(StaffSession)
        .where(StaffSession.agent_id == agent_id, StaffSession.ended_at.is_(None))
        .values(ended_at=now)
    )


# --- sign-in -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    """`agent` is set on success; otherwise `locked_for_s` tells a locked account apart."""

    agent: Agent | None
    locked_for_s: float = 0.0


async def check_login(
    session: AsyncSession, cfg: ConsoleSettings, email: str, password: str, now: datetime
) -> LoginResult:
    """Verify e-mail and password, counting failures per account (the caller commits even
    on failure, so the count survives)."""
    rows = (
        await session.execute(
            select(Agent, StaffCredential)
            .join(StaffCredential, StaffCredential.agent_id == Agent.id)
            .where(func.lower(Agent.email) == email.strip().lower(), Agent.active.is_(True))
            .order_by(Agent.id)
        )
    ).all()
    agent, cred = (rows[0][0], rows[0][1]) if rows else (None, None)
    if cred is not None and cred.locked_until is not None and cred.locked_until > now:
        await verify_password(None, password)  # the same cost as any other attempt
        return LoginResult(None, (cred.locked_until - now).total_seconds())
    ok = await verify_password(cred.password_hash if cred else None, password)
    if agent is None or cred is None or agent.role not in AGENT_ROLES:
        return LoginResult(None)
    if not ok:
        cred.failed_logins += 1
        if cred.failed_logins >= cfg.max_failed_logins:
            cred.failed_logins = 0
            cred.locked_until = now + timedelta(seconds=cfg.lockout_s)
            return LoginResult(None, float(cfg.lockout_s))
        return LoginResult(None)
    cred.failed_logins = 0
    cred.locked_until = None
    if _hasher.check_needs_rehash(cred.password_hash):
        cred.password_hash = await hash_password(password)
    return LoginResult(agent)


async def open_session(
    session: AsyncSession, cfg: ConsoleSettings, agent: Agent, now: datetime
) -> tuple[str, StaffSession]:
    """A new server-side session; returns the cookie value (shown to the browser only)."""
    sid = secrets.token_urlsafe(32)
    row = StaffSession(
        agent_id=agent.id,
        session_hash=_sha(sid),
        last_seen_at=now,
        expires_at=now + timedelta(seconds=cfg.session_absolute_s),
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return sid, row


async def live_session(
    session: AsyncSession, cfg: ConsoleSettings, sid: str, now: datetime
) -> tuple[StaffSession, Agent]:
    row = await session.scalar(select(StaffSession).where(StaffSession.session_hash == _sha(sid)))
    if (
        row is None
        or row.ended_at is not None
        or row.expires_at <= now
        or row.last_seen_at + timedelta(seconds=cfg.session_idle_s) <= now
    ):
        raise Unauthorized("the console session expired or was signed out; sign in again")
    agent = await session.get(Agent, row.agent_id)
    if agent is None or not agent.active or agent.role not in AGENT_ROLES:
        raise Unauthorized("the console session expired or was signed out; sign in again")
    return row, agent


async def current_session(
    conn: HTTPConnection, now: datetime, session: AsyncSession
) -> tuple[str, StaffSession, Agent]:
    """The live session of a cookie-authenticated request. An unsafe method must carry the
    session's CSRF token in `X-CSRF-Token` (bearer requests need none: no browser adds a
    bearer header on its own)."""
    sid = session_cookie(conn)
    if not sid:
        raise Unauthorized("missing bearer token or console session")
    row, agent = await live_session(session, console_settings(conn), sid, now)
    if conn.scope.get("method", "GET") not in SAFE_METHODS:
        sent = conn.headers.get(CSRF_HEADER, "")
        if not secrets.compare_digest(sent.encode(), csrf_for(sid).encode()):
            raise Forbidden("missing or wrong CSRF token (X-CSRF-Token) for a console session")
    return sid, row, agent


async def cookie_principal(
    conn: HTTPConnection, now: datetime, session: AsyncSession, *, touch: bool = True
) -> Principal:
    _sid, row, agent = await current_session(conn, now, session)
    # Idle expiry slides with use; written at most every 15 s, not on every request.
    if touch and (now - row.last_seen_at).total_seconds() >= 15:
        row.last_seen_at = now
    return Principal(role=agent.role, agent_id=agent.id, tier=agent.tier, name=agent.name)
