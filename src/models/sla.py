from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, IdMixin, TimestampMixin, UtcDateTime


class SlaTimer(IdMixin, TimestampMixin, Base):
    """One row per (conversation, kind); the scheduler polls `next_fire_at`."""

    __tablename__ = "sla_timers"
    __table_args__ = (UniqueConstraint("conversation_id", "kind"),)

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[str] = mapped_column(String(12), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    warn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    remaining_s: Mapped[float | None] = mapped_column(Float)
    target_s: Mapped[float] = mapped_column(Float, default=0, nullable=False)
    next_fire_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
