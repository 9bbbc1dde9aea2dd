"""open cases per mediator read from one covering index

Revision ID: f2a4c6e8b0d1
Revises: c4d1f7a2b9e3
Create Date: 2026-12-02 02:40:00

Assignment counts an organisation's open cases per mediator once per consumer batch. With the
index on organisation_id alone each of the organisation's cases, closed ones too, was fetched
from the table to test its mediator and status; (organisation_id, mediator_id, status) answers
the count from the index alone, grouped in index order. It leads with organisation_id, so it
replaces that column's own index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f2a4c6e8b0d1"
down_revision: str | None = "c4d1f7a2b9e3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mediation_cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mediation_cases_workload",
            ["organisation_id", "mediator_id", "status"],
            unique=False,
        )
        batch_op.drop_index("ix_mediation_cases_organisation_id")


def downgrade() -> None:
    with op.batch_alter_table("mediation_cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mediation_cases_organisation_id", ["organisation_id"], unique=False
        )
        batch_op.drop_index("ix_mediation_cases_workload")
