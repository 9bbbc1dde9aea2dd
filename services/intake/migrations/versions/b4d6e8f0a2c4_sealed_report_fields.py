"""sealed report fields: a report's text, reporter, parties and location in one encrypted value

Revision ID: b4d6e8f0a2c4
Revises: 0f2d04d868be
Create Date: 2026-12-01 07:30:00

They are always read together, so one encryption instead of four per report. Reports stored
before keep their per-field values (read as before); `text_enc` becomes nullable.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "b4d6e8f0a2c4"
down_revision: str | None = "0f2d04d868be"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("intake_reports") as batch:
        batch.add_column(sa.Column("sealed_enc", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.alter_column(
            "text_enc", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=True
        )


def downgrade() -> None:
    # a report stored sealed has no per-field values: it cannot go back without the key
    with op.batch_alter_table("intake_reports") as batch:
        batch.alter_column(
            "text_enc", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False
        )
        batch.drop_column("sealed_enc")
