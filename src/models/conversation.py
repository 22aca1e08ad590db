from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, IdMixin, Json, TimestampMixin, UtcDateTime


class Conversation(IdMixin, TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_contact_status", "contact_id", "status"),
        Index("ix_conversations_queue_status", "queue_id", "status"),
    )

    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)  # of its first message
    status: Mapped[str] = mapped_column(String(16), default="open", nullable=False)
    queue_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("queues.id"))
    priority: Mapped[str] = mapped_column(String(8), default="normal", nullable=False)
    assignee_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("agents.id"), index=True)
    tags: Mapped[list[str]] = mapped_column(Json, default=list, nullable=False)
    routing_reasons: Mapped[list[str]] = mapped_column(Json, default=list, nullable=False)
    language: Mapped[str | None] = mapped_column(String(8))
    subject: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_inbound_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_outbound_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Since when the customer has been waiting for an agent (None when the ball is theirs).
    waiting_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ack_sent: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    csat: Mapped[int | None] = mapped_column(Integer)


class Assignment(IdMixin, Base):
    """History of who held a conversation; the current holder is `Conversation.assignee_id`."""

    __tablename__ = "assignments"

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), index=True, nullable=False
    )
    agent_id: Mapped[int] = mapped_column(BigId, ForeignKey("agents.id"), nullable=False)
    assigned_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("agents.id"))
    reason: Mapped[str] = mapped_column(String(300), default="", nullable=False)
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
