"""stats counters: a week span beside day and month, no village level, no duplicate rows

The counters are kept per day, per week (Monday to Sunday, no filter) and per month. Village
areas are read as ranges of whole grid codes (level 4), and a filter on a dimension that is
also a group is that group's rows. A located case counts in at most 192 rows instead of 245.
The table keeps its columns: its rows are recounted from the cases.

Revision ID: e7a4c2b9d613
Revises: 9d3f5b7c1e20
Create Date: 2026-12-01 04:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.followup.ledger import CaseProjection
from services.followup.reporting.domain import KEY_FIELDS, MEASURE_FIELDS, counter_keys, measures_of

revision: str = 'e7a4c2b9d613'
down_revision: str | None = '9d3f5b7c1e20'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = ("case_id", "status", "source", "dispute_type", "channel", "tier", "severity")
TEXT_MORE = ("organisation_id", "grid_code", "first_tier")
TIMES = ("received_at", "created_at", "agreed_at", "mediation_due")
CHUNK = 20_000  # cases per pass: the rows of a pass are added to the table before the next


def upgrade() -> None:
    op.execute("DELETE FROM stats_counters")
    recount()


def recount() -> None:
    """Count every case of the ledger again by the rules of reporting.domain, a chunk of cases
    at a time (each chunk's sums added to the rows, so memory stays bounded)."""
    bind = op.get_bind()
    cases = sa.table(
        "ledger_cases",
        *(sa.column(n, sa.String()) for n in TEXT + TEXT_MORE),
        *(sa.column(n, sa.DateTime(timezone=True)) for n in TIMES),
        sa.column("satisfaction", sa.Integer()),
        sa.column("overdue", sa.Boolean()),
    )
    columns = (*KEY_FIELDS, *MEASURE_FIELDS)
    adds = ", ".join(f"{m} = stats_counters.{m} + excluded.{m}" for m in MEASURE_FIELDS)
    upsert = sa.text(
        f"INSERT INTO stats_counters ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + c for c in columns)}) "
        f"ON CONFLICT ({', '.join(KEY_FIELDS)}) DO UPDATE SET {adds}"
    ).bindparams(sa.bindparam("period", type_=sa.Date()))
    sums: dict[tuple[object, ...], list[int]] = {}

    def write() -> None:
        if sums:
            bind.execute(
                upsert,
                [dict(zip(columns, (*k, *v), strict=True)) for k, v in sums.items()],
            )
            sums.clear()

    seen = 0
    for row in bind.execute(sa.select(cases)).mappings().yield_per(CHUNK):
        p = CaseProjection(**dict(row))
        m = measures_of(p)
        for key in counter_keys(p):
            acc = sums.setdefault(key, [0] * len(MEASURE_FIELDS))
            for i, v in enumerate(m):
                acc[i] += v
        seen += 1
        if seen % CHUNK == 0:
            write()
    write()


def downgrade() -> None:
    # the month rows of the revision before cannot be rebuilt by this code: the table is left
    # empty (that release's own backfill, 9d3f5b7c1e20.backfill, refills it)
    op.execute("DELETE FROM stats_counters")
