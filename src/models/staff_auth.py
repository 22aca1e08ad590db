"""Staff console sign-in: passwords, invitations and server-side sessions.

Kept apart from `agents` so the API's bearer tokens stay exactly as they were: a console
session is one more way for the same agent (same role, same tier) to authenticate.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, IdMixin, TimestampMixin, UtcDateTime


class StaffCredential(IdMixin, TimestampMixin, Base):
    """An agent's console password (argon2id) and failed-login lockout state."""

    __tablename__ = "staff_credentials"

    agent_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("agents.id"), unique=True, nullable=False
    )
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    password_set_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())


class StaffInvitation(IdMixin, TimestampMixin, Base):
    """A one-time, expiring link that sets (or resets) an agent's password."""

    __tablename__ = "staff_invitations"

    agent_id: Mapped[int] = mapped_column(BigId, ForeignKey("agents.id"), nullable=False)
    # sha256 of the random token: the link is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("agents.id"))


class StaffSession(IdMixin, TimestampMixin, Base):
    """A signed-in console tab (or browser): idle and absolute expiry, its CSRF token."""

    __tablename__ = "staff_sessions"

    agent_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("agents.id"), index=True, nullable=False
    )
    # sha256 of the cookie value: a database dump opens no session. The CSRF token is
    # derived from the cookie value (never stored), so any instance can check it.
    session_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    # Set while the console reports the tab open (presence); None for a session that never
    # set presence, so API-only habits are never overridden.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
