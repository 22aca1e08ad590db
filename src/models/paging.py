from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, IdMixin, TimestampMixin, UtcDateTime

PAGE_STATUSES = ("pending", "sending", "delivered", "failed")
WATCH_STATES = ("watching", "answered", "escalated", "closed")


class CrisisWatch(IdMixin, TimestampMixin, Base):
    """A crisis or urgent medical conversation waiting for a clinician's first reply.

    Armed when the conversation first carries the tag; due `unanswered_after` later. The
    paging worker claims due rows (SKIP LOCKED on PostgreSQL), so one instance escalates.
    """

    __tablename__ = "crisis_watches"
    __table_args__ = (Index("ix_crisis_watches_state_due_at", "state", "due_at"),)

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    since: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    state: Mapped[str] = mapped_column(String(12), default="watching", nullable=False)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Page(IdMixin, TimestampMixin, Base):
    """One page of the on-call supervisor through a real channel, with its delivery status."""

    __tablename__ = "pages"
    __table_args__ = (
        # One page per conversation, reason and target, however many instances decide it.
        UniqueConstraint("conversation_id", "reason", "channel", "recipient"),
        Index("ix_pages_status_next_attempt_at", "status", "next_attempt_at"),
    )

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    reason: Mapped[str] = mapped_column(String(32), nullable=False)  # unanswered | no_clinician
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(12), default="pending", nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # When `sending`, the lease expiry: a crashed worker's page becomes claimable again.
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    external_id: Mapped[str | None] = mapped_column(String(500))
