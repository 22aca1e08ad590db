"""callback requests: missed calls and voicemails to ring back

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 07:14:45.417555
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_table(
        "callback_requests",
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("contact_id", BigId, nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("missed_count", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_call_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_call_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_call_status", sa.String(length=16), nullable=False),
        sa.Column("last_message_id", BigId, nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by_agent_id", BigId, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["closed_by_agent_id"],
            ["agents.id"],
            name=op.f("fk_callback_requests_closed_by_agent_id_agents"),
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_callback_requests_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_callback_requests_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["last_message_id"],
            ["messages.id"],
            name=op.f("fk_callback_requests_last_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_requests")),
    )
    with op.batch_alter_table("callback_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_callback_requests_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(
            "ix_callback_requests_status_due_at", ["status", "due_at"], unique=False
        )
        # At most one open request per conversation: concurrent missed calls collapse.
        batch_op.create_index(
            "uq_callback_requests_open_conversation",
            ["conversation_id"],
            unique=True,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("callback_requests", schema=None) as batch_op:
        batch_op.drop_index("uq_callback_requests_open_conversation")
        batch_op.drop_index("ix_callback_requests_status_due_at")
        batch_op.drop_index(batch_op.f("ix_callback_requests_conversation_id"))
    op.drop_table("callback_requests")
