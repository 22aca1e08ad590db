from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, IdMixin, TimestampMixin, UtcDateTime

# open: someone must ring back; done: reached the customer; no_answer: gave up after the last
# attempt; wrong_number: the number is not the customer's; cancelled: no longer needed
# (the conversation was resolved before anyone rang back).
CALLBACK_STATUSES = ("open", "done", "no_answer", "wrong_number", "cancelled")


class CallbackRequest(IdMixin, TimestampMixin, Base):
    """A promise to ring a customer back, opened by a missed/busy/failed call or a voicemail.

    Several missed calls collapse into one open request per conversation (`missed_count`);
    the partial unique index makes that hold under concurrent webhooks too. `due_at` is the
    callback SLA deadline; `breached_at` records that its breach was reported (once).
    """

    __tablename__ = "callback_requests"
    __table_args__ = (
        Index(
            "uq_callback_requests_open_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_callback_requests_status_due_at", "status", "due_at"),
    )

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), index=True, nullable=False
    )
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id"), nullable=False)
    phone: Mapped[str] = mapped_column(String(32), nullable=False)  # E.164, the number to ring
    # Queue and priority of the conversation when the request was last opened or bumped.
    queue: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(8), default="normal", nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="open", nullable=False)
    missed_count: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    first_call_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    last_call_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    last_call_status: Mapped[str] = mapped_column(String(16), nullable=False)
    last_message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="SET NULL")
    )
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    breached_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(1000))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_by_agent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("agents.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
