"""crisis watches and pages: unanswered crises escalate, every page keeps its delivery status

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:03:49
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "crisis_watches",
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("since", Ts, nullable=False),
        sa.Column("due_at", Ts, nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("answered_at", Ts, nullable=True),
        sa.Column("escalated_at", Ts, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_crisis_watches_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crisis_watches")),
        sa.UniqueConstraint("conversation_id", name=op.f("uq_crisis_watches_conversation_id")),
    )
    op.create_index("ix_crisis_watches_state_due_at", "crisis_watches", ["state", "due_at"])
    op.create_table(
        "pages",
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Ts, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", Ts, nullable=True),
        sa.Column("external_id", sa.String(length=500), nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_pages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pages")),
        sa.UniqueConstraint(
            "conversation_id",
            "reason",
            "channel",
            "recipient",
            name=op.f("uq_pages_conversation_id_reason_channel_recipient"),
        ),
    )
    op.create_index(op.f("ix_pages_conversation_id"), "pages", ["conversation_id"])
    op.create_index("ix_pages_status_next_attempt_at", "pages", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_pages_status_next_attempt_at", table_name="pages")
    op.drop_index(op.f("ix_pages_conversation_id"), table_name="pages")
    op.drop_table("pages")
    op.drop_index("ix_crisis_watches_state_due_at", table_name="crisis_watches")
    op.drop_table("crisis_watches")
