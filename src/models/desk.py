"""Support-desk tables (issue 17): the search index, canned replies, the read audit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DDL, ForeignKey, Index, String, Text, event
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, IdMixin, TimestampMixin, UtcDateTime

SEARCH_KINDS = ("message", "subject", "contact")
# PostgreSQL's text search vector; on SQLite the column stays empty (FTS5 holds the terms).
SearchVector = TSVECTOR().with_variant(Text(), "sqlite")


class SearchDocument(IdMixin, TimestampMixin, Base):
    """One searchable thing: a message's text, a conversation's subject, or a contact's name
    with its identities. Holds no text: lexemes (PostgreSQL `tsv`) or stems (SQLite FTS5 table
    `search_fts`, rowid = this id). `created_at` is the indexed thing's own time."""

    __tablename__ = "search_documents"
    __table_args__ = (
        Index("ix_search_documents_tsv", "tsv", postgresql_using="gin"),
        Index("ix_search_documents_contact_id", "contact_id"),
    )

    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    conversation_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(BigId)
    language: Mapped[str | None] = mapped_column(String(8))
    tsv: Mapped[str | None] = mapped_column(SearchVector)


class CannedReply(IdMixin, TimestampMixin, Base):
    """A prepared answer supervisors keep per language and queue; placeholders are filled at
    insertion (`router.flows.canned`)."""

    __tablename__ = "canned_replies"

    title: Mapped[str] = mapped_column(String(120), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    language: Mapped[str | None] = mapped_column(String(8))  # None: any language
    queue_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("queues.id"))  # None: any
    created_by_id: Mapped[int | None] = mapped_column(BigId)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ReadAudit(IdMixin, TimestampMixin, Base):
    """Who read a patient's messages or contact record, when and from where.

    Survives erasure: `detail` (a search query may name the patient) is cleared, the rest is
    the anonymised trail (an agent, a time, an address, a tombstone contact id)."""

    __tablename__ = "read_audit"
    __table_args__ = (Index("ix_read_audit_contact_id_id", "contact_id", "id"),)

    agent_id: Mapped[int | None] = mapped_column(BigId)  # None: the bootstrap admin token
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    contact_id: Mapped[int | None] = mapped_column(BigId)
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(String(300))


# SQLite's full-text index lives in an FTS5 virtual table next to `search_documents` (rowid =
# document id). It holds stems, never the text. Created with the table by `create_all` (tests)
# and by migration 0007.
FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5("
    "terms, tokenize = 'unicode61 remove_diacritics 2')"
)
_create: DDL = DDL(FTS_DDL)  # type: ignore[no-untyped-call]
_drop: DDL = DDL("DROP TABLE IF EXISTS search_fts")  # type: ignore[no-untyped-call]
event.listen(SearchDocument.__table__, "after_create", _create.execute_if(dialect="sqlite"))
event.listen(SearchDocument.__table__, "before_drop", _drop.execute_if(dialect="sqlite"))
