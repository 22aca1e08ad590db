"""index for sweeps over recent messages of one channel

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 08:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_channel_direction_created_at",
        "messages",
        ["channel", "direction", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_messages_channel_direction_created_at", table_name="messages")
