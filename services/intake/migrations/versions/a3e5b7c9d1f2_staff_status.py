"""staff status (token revocation) and the read audit (clear reads of personal data)

Revision ID: a3e5b7c9d1f2
Revises: 7c1f0a9d2b31
Create Date: 2026-11-30 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "a3e5b7c9d1f2"
down_revision: str | None = "7c1f0a9d2b31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_status",
        sa.Column("staff_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("staff_id"),
    )
    op.create_table(
        "read_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=True),
        sa.Column("route", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_read_audit_case", "read_audit", ["case_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_read_audit_case", table_name="read_audit")
    op.drop_table("read_audit")
    op.drop_table("staff_status")
