from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, Json, TimestampMixin, UtcDateTime

PRESENCES = ("online", "away", "offline")


class Agent(IdMixin, TimestampMixin, Base):
    """A person (or, with role `integration`, a service account) holding an API token."""

    __tablename__ = "agents"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    tier: Mapped[int | None] = mapped_column(Integer)
    languages: Mapped[list[str]] = mapped_column(Json, default=list, nullable=False)
    skills: Mapped[list[str]] = mapped_column(Json, default=list, nullable=False)
    capacity: Mapped[int] = mapped_column(Integer, default=5, nullable=False)
    presence: Mapped[str] = mapped_column(String(8), default="offline", nullable=False)
    presence_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # sha256 of the random token: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    settings: Mapped[dict[str, Any]] = mapped_column(Json, default=dict, nullable=False)
