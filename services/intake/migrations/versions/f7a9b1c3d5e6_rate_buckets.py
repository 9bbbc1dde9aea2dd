"""rate buckets: rate limits shared by every intake instance (keys and failed keys)

Revision ID: f7a9b1c3d5e6
Revises: a3e5b7c9d1f2
Create Date: 2026-11-30 19:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "f7a9b1c3d5e6"
down_revision: str | None = "a3e5b7c9d1f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
