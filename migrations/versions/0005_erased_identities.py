"""erased identities: salted hashes of the identities of erased contacts, for the audit

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "erased_identities",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value_hash", sa.String(length=64), nullable=False),
        sa.Column("contact_id", BigId, nullable=False),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erased_identities")),
    )
    op.create_index(op.f("ix_erased_identities_value_hash"), "erased_identities", ["value_hash"])


def downgrade() -> None:
    op.drop_index(op.f("ix_erased_identities_value_hash"), table_name="erased_identities")
    op.drop_table("erased_identities")
