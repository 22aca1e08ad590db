from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, IdMixin, Json, TimestampMixin, UtcDateTime

DIRECTIONS = ("in", "out", "note")
# received: inbound stored; queued: reply waiting in the outbox; sent: the channel accepted it;
# available: stored for the app to pull; failed: dead-lettered; none: internal notes.
DELIVERY_STATUSES = ("received", "queued", "sent", "available", "failed", "none")


class Message(IdMixin, TimestampMixin, Base):
    __tablename__ = "messages"
    # The channel's own id makes redelivered webhooks no-ops (NULLs never collide).
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        # Sweeps over recent replies of one channel (web chat's mail fallback).
        Index("ix_messages_channel_direction_created_at", "channel", "direction", "created_at"),
    )

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), index=True, nullable=False
    )
    direction: Mapped[str] = mapped_column(String(4), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), default="text", nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text, default="", nullable=False)
    author_agent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("agents.id"))
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    delivery_status: Mapped[str] = mapped_column(String(12), default="received", nullable=False)
    language: Mapped[str | None] = mapped_column(String(8))
    channel_meta: Mapped[dict[str, Any]] = mapped_column(Json, default=dict, nullable=False)


class Attachment(IdMixin, TimestampMixin, Base):
    """A reference to a file kept elsewhere (the channel, a file store): never bytes."""

    __tablename__ = "attachments"

    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), index=True, nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), default="file", nullable=False)
    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    mime: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str | None] = mapped_column(String(300))
    meta: Mapped[dict[str, Any]] = mapped_column(Json, default=dict, nullable=False)
