"""staff status (token revocation) and the read audit (clear reads of personal data)

Revision ID: d6b8e0f2a4c5
Revises: e179038b4a16
Create Date: 2026-11-30 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "d6b8e0f2a4c5"
down_revision: str | None = "e179038b4a16"
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
    with op.batch_alter_table("staff") as batch:
        batch.add_column(
            sa.Column("token_version", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    op.drop_index("ix_read_audit_case", table_name="read_audit")
    op.drop_table("read_audit")
    op.drop_table("staff_status")
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("token_version")
