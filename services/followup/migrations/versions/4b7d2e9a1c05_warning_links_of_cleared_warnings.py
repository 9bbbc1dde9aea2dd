"""warning links of cleared warnings (GET /v1/warnings?case_id= finds them too)

Until now a warning's case links were deleted when it cleared; they are kept from now on, and
the cleared warnings already stored get theirs back from their case_ids.

Revision ID: 4b7d2e9a1c05
Revises: 378dab9c71f1
Create Date: 2026-12-01 10:05:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '4b7d2e9a1c05'
down_revision: str | None = '378dab9c71f1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    warnings = sa.table(
        "warnings", sa.column("id", sa.Integer()), sa.column("case_ids", sa.JSON()),
        sa.column("active_key", sa.String()),
    )
    links = sa.table(
        "warning_case_links", sa.column("warning_id", sa.Integer()), sa.column("case_id", sa.String())
    )
    rows = []
    for wid, case_ids in bind.execute(
        sa.select(warnings.c.id, warnings.c.case_ids).where(warnings.c.active_key.is_(None))
    ):
        ids = json.loads(case_ids) if isinstance(case_ids, str) else (case_ids or [])
        rows += [{"warning_id": wid, "case_id": c} for c in dict.fromkeys(ids)]
    if rows:
        bind.execute(links.insert(), rows)


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "DELETE FROM warning_case_links WHERE warning_id IN "
            "(SELECT id FROM warnings WHERE active_key IS NULL)"
        )
    )
