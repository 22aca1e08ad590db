"""staff console: passwords, invitations and server-side sessions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "staff_credentials",
        sa.Column("agent_id", BigId, nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("password_set_at", Ts, nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", Ts, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_staff_credentials_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_credentials")),
        sa.UniqueConstraint("agent_id", name=op.f("uq_staff_credentials_agent_id")),
    )
    op.create_table(
        "staff_invitations",
        sa.Column("agent_id", BigId, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", Ts, nullable=False),
        sa.Column("used_at", Ts, nullable=True),
        sa.Column("created_by_id", BigId, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_staff_invitations_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["agents.id"],
            name=op.f("fk_staff_invitations_created_by_id_agents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_invitations_token_hash")),
    )
    op.create_table(
        "staff_sessions",
        sa.Column("agent_id", BigId, nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("last_seen_at", Ts, nullable=False),
        sa.Column("expires_at", Ts, nullable=False),
        sa.Column("heartbeat_at", Ts, nullable=True),
        sa.Column("ended_at", Ts, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_staff_sessions_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sessions")),
        sa.UniqueConstraint("session_hash", name=op.f("uq_staff_sessions_session_hash")),
    )
    op.create_index(op.f("ix_staff_sessions_agent_id"), "staff_sessions", ["agent_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_sessions_agent_id"), table_name="staff_sessions")
    op.drop_table("staff_sessions")
    op.drop_table("staff_invitations")
    op.drop_table("staff_credentials")
