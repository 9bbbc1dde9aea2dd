"""stats counters: no rows of a filter on an unknown value

No route filters by an empty channel, severity, dispute type or source (the API refuses an empty
value), so the rows of such a filter were written and moved on every change and never read: a
case not yet triaged counted in 192 rows, now in 96, and its triage moves 288 rows, not 384.
The rows go; every other row, and every answer, stays as it was.

Revision ID: f2b8d4a6c1e3
Revises: e7a4c2b9d613
Create Date: 2026-12-02 02:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.followup.ledger import CaseProjection
from services.followup.reporting.domain import KEY_FIELDS, MEASURE_FIELDS, counter_keys, measures_of

revision: str = 'f2b8d4a6c1e3'
down_revision: str | None = 'e7a4c2b9d613'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = ("case_id", "status", "source", "dispute_type", "channel", "tier", "severity")
TEXT_MORE = ("organisation_id", "grid_code", "first_tier")
TIMES = ("received_at", "created_at", "agreed_at", "mediation_due")
CHUNK = 20_000  # cases per pass: the rows of a pass are added to the table before the next


def upgrade() -> None:
    op.execute("DELETE FROM stats_counters WHERE fdim <> '' AND fvalue = ''")


def downgrade() -> None:
    # the rows of a filter on an unknown value, counted again from the cases (as e7a4c2b9d613
    # counted them), a chunk of cases at a time
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
    fdim, fvalue = KEY_FIELDS.index("fdim"), KEY_FIELDS.index("fvalue")

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
        for key in counter_keys(p, unknown_filters=True):
            if key[fdim] == "" or key[fvalue] != "":
                continue
            acc = sums.setdefault(key, [0] * len(MEASURE_FIELDS))
            for i, v in enumerate(m):
                acc[i] += v
        seen += 1
        if seen % CHUNK == 0:
            write()
    write()
