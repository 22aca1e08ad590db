from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampMixin


class Queue(IdMixin, TimestampMixin, Base):
    """A work queue; rows mirror the policy file's queues (synced at start-up)."""

    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    title: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    # 1 = first line (bookings, billing, technical), 2 = second line (clinicians).
    tier: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
