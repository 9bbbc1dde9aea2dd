"""case scopes: who may read a case's decisions

Revision ID: 5d2c8e7f1a40
Revises: 2e9ae1bea0b2
Create Date: 2026-11-30 19:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "5d2c8e7f1a40"
down_revision: str | None = "2e9ae1bea0b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "triage_case_scopes",
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("grid_code", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("organisation_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("mediator_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("co_channels", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("case_id"),
    )


def downgrade() -> None:
    op.drop_table("triage_case_scopes")
