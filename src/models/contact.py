from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, IdMixin, Json, TimestampMixin, UtcDateTime

# An identity kind is where a person can be reached or recognised: one per channel, plus the
# cross-channel keys `phone` (E.164) and `email` that merge identities into one contact.
IDENTITY_KINDS = ("telegram", "webchat", "email", "phone", "app")


class Contact(IdMixin, TimestampMixin, Base):
    __tablename__ = "contacts"

    name: Mapped[str | None] = mapped_column(String(200))
    attributes: Mapped[dict[str, Any]] = mapped_column(Json, default=dict, nullable=False)
    # Set when an agent (or a verified phone/email) merged this contact into another one.
    merged_into_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contacts.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ContactIdentity(IdMixin, TimestampMixin, Base):
    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True, nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    value: Mapped[str] = mapped_column(String(320), nullable=False)
    verified: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # e.g. the Telegram user blocked the bot: replies there fail permanently.
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class ErasedIdentity(IdMixin, TimestampMixin, Base):
    """The salted hash (HMAC-SHA256, server key) of an identity whose contact was erased: an
    audit can tell that a later contact writes from an erased identity; the identity itself
    is gone. `created_at` is when it was erased."""

    __tablename__ = "erased_identities"

    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    value_hash: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    # The erased contact (its row stays as an anonymised tombstone).
    contact_id: Mapped[int] = mapped_column(BigId, nullable=False)
