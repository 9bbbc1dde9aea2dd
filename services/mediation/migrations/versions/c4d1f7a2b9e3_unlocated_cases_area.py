"""unlocated cases: the area is the case's own grid code, never its organisation's

Revision ID: c4d1f7a2b9e3
Revises: a12d0b97c3ac
Create Date: 2026-12-01 01:10:00

A case with no grid code used to take the area of the organisation it was assigned to, so a
town coordinator saw it in mediation but not in the other services. One rule now
(shared.scope.case_area): its own grid code, "" when it has none (the county centre's).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c4d1f7a2b9e3"
down_revision: str | None = "a12d0b97c3ac"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE mediation_cases SET area_code = COALESCE(grid_code, '')"
        " WHERE area_code <> COALESCE(grid_code, '')"
    )
    op.execute(
        "UPDATE supervisions SET area_code = COALESCE((SELECT COALESCE(c.grid_code, '')"
        " FROM mediation_cases c WHERE c.case_id = supervisions.case_id), area_code)"
    )


def downgrade() -> None:
    pass  # the organisations' areas are not kept: nothing to restore
