"""support desk (issue 17): search index, canned replies, read audit

The search index is backfilled here from what is already stored (messages, subjects,
contacts), in batches of 500 through the same code that indexes new writes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision: str = "0007"
# Another branch adds 0006; the merge re-chains this one after it.
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)
FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5("
    "terms, tokenize = 'unicode61 remove_diacritics 2')"
)


def upgrade() -> None:
    op.create_table(
        "search_documents",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("conversation_id", BigId, nullable=True),
        sa.Column("message_id", BigId, nullable=True),
        sa.Column("contact_id", BigId, nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("tsv", TSVECTOR().with_variant(sa.Text(), "sqlite"), nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_search_documents_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_search_documents_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_documents")),
    )
    op.create_index(
        op.f("ix_search_documents_conversation_id"), "search_documents", ["conversation_id"]
    )
    op.create_index(op.f("ix_search_documents_message_id"), "search_documents", ["message_id"])
    op.create_index("ix_search_documents_contact_id", "search_documents", ["contact_id"])
    op.create_index("ix_search_documents_tsv", "search_documents", ["tsv"], postgresql_using="gin")
    if op.get_bind().dialect.name == "sqlite":
        op.execute(FTS_DDL)

    op.create_table(
        "canned_replies",
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("queue_id", BigId, nullable=True),
        sa.Column("created_by_id", BigId, nullable=True),
        sa.Column("updated_at", Ts, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["queues.id"], name=op.f("fk_canned_replies_queue_id_queues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_replies")),
    )

    op.create_table(
        "read_audit",
        sa.Column("agent_id", BigId, nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("contact_id", BigId, nullable=True),
        sa.Column("conversation_id", BigId, nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.String(length=300), nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_read_audit")),
    )
    op.create_index("ix_read_audit_contact_id_id", "read_audit", ["contact_id", "id"])

    from router.repo.search import backfill_sync

    backfill_sync(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_read_audit_contact_id_id", table_name="read_audit")
    op.drop_table("read_audit")
    op.drop_table("canned_replies")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_index("ix_search_documents_tsv", table_name="search_documents")
    op.drop_index("ix_search_documents_contact_id", table_name="search_documents")
    op.drop_index(op.f("ix_search_documents_message_id"), table_name="search_documents")
    op.drop_index(op.f("ix_search_documents_conversation_id"), table_name="search_documents")
    op.drop_table("search_documents")
