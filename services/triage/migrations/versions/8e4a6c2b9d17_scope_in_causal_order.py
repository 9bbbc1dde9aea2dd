"""triage's scope projection applies trail entries in causal order (shared.db.CausalGate)

Revision ID: 8e4a6c2b9d17
Revises: 6f2d8b0c4e31
Create Date: 2026-12-03 18:40:00

`triage.scope` applied entries in arrival order, and recorded (inbox) only those that changed
a scope fact: a late older entry undid a newer tier. The gate needs every entry recorded, so
the entries from before it began (the time written here) that it never recorded count as
applied.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "8e4a6c2b9d17"
down_revision: str | None = "6f2d8b0c4e31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    epochs = op.create_table(
        "causal_gate_epochs",
        sa.Column("consumer", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer"),
    )
    op.bulk_insert(epochs, [{"consumer": "triage.scope", "since": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("causal_gate_epochs")
