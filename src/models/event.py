from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, IdMixin, Json, TimestampMixin


class Event(IdMixin, TimestampMixin, Base):
    """Audit trail and the source of the live event stream (ids are the SSE cursor).

    Events carry ids and metadata, never message bodies.
    """

    __tablename__ = "events"

    type: Mapped[str] = mapped_column(String(48), nullable=False)
    conversation_id: Mapped[int | None] = mapped_column(BigId, index=True)
    contact_id: Mapped[int | None] = mapped_column(BigId)
    agent_id: Mapped[int | None] = mapped_column(BigId)
    queue: Mapped[str | None] = mapped_column(String(64))
    # Lowest agent tier allowed to see it: 1 = everyone, 2 = second line and up.
    tier: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict, nullable=False)
