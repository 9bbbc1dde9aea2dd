"""case scope: who may read a case (tier, area, organisation, mediator, co-handlers, sender)

Revision ID: 7c1f0a9d2b31
Revises: 1ba99e12dc6e
Create Date: 2026-11-30 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "7c1f0a9d2b31"
down_revision: str | None = "1ba99e12dc6e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("intake_cases") as batch:
        batch.add_column(
            sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
        batch.add_column(
            sa.Column("grid_code", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "organisation_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True
            )
        )
        batch.add_column(
            sa.Column("mediator_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True)
        )
        batch.add_column(sa.Column("co_channels", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("integrator_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("intake_cases") as batch:
        for name in ("integrator_id", "co_channels", "mediator_id", "organisation_id", "grid_code", "tier"):
            batch.drop_column(name)
