"""stats counters per period x area level x tier x dimension (replace stats_daily)

stats_daily was keyed by every dimension at once (about one row per case at scale); the counters
are per day and per month, per area level, per filter and group dimension, so a dashboard query
reads a bounded number of rows. Filled from the cases already in the ledger.

Revision ID: 9d3f5b7c1e20
Revises: 4b7d2e9a1c05
Create Date: 2026-12-01 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.followup.ledger import CaseProjection
from services.followup.reporting.domain import KEY_FIELDS, MEASURE_FIELDS, counter_keys, measures_of

revision: str = '9d3f5b7c1e20'
down_revision: str | None = '4b7d2e9a1c05'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = ("case_id", "status", "source", "dispute_type", "channel", "tier", "severity")
TEXT_MORE = ("organisation_id", "grid_code", "first_tier")
TIMES = ("received_at", "created_at", "agreed_at", "mediation_due")
AREA = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def upgrade() -> None:
    op.drop_table('stats_daily')
    op.create_table(
        'stats_counters',
        sa.Column('span', sa.String(1), nullable=False),
        sa.Column('fdim', sa.String(16), nullable=False),
        sa.Column('fvalue', sa.String(128), nullable=False),
        sa.Column('gdim', sa.String(16), nullable=False),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.Column('area', AREA, nullable=False),
        sa.Column('period', sa.Date(), nullable=False),
        sa.Column('tier', sa.String(16), nullable=False),
        sa.Column('gvalue', sa.String(128), nullable=False),
        *(sa.Column(m, sa.Integer(), nullable=False) for m in MEASURE_FIELDS),
        sa.PrimaryKeyConstraint(
            'span', 'fdim', 'fvalue', 'gdim', 'level', 'area', 'period', 'tier', 'gvalue'
        ),
        sqlite_with_rowid=False,
    )
    op.create_index('ix_stats_counters_period', 'stats_counters', ['span', 'period'])
    backfill()


def backfill() -> None:
    """One pass over the cases already projected, so the counters start complete."""
    bind = op.get_bind()
    cases = sa.table(
        "ledger_cases",
        *(sa.column(n, sa.String()) for n in TEXT + TEXT_MORE),
        *(sa.column(n, sa.DateTime(timezone=True)) for n in TIMES),
        sa.column("satisfaction", sa.Integer()),
        sa.column("overdue", sa.Boolean()),
    )
    sums: dict[tuple[object, ...], list[int]] = {}
    for row in bind.execute(sa.select(cases)).mappings():
        p = CaseProjection(**dict(row))
        m = measures_of(p)
        for key in counter_keys(p):
            acc = sums.setdefault(key, [0] * len(MEASURE_FIELDS))
            for i, v in enumerate(m):
                acc[i] += v
    if not sums:
        return
    counters = sa.table(
        "stats_counters",
        sa.column("period", sa.Date()),
        sa.column("level", sa.Integer()),
        *(sa.column(k, sa.String()) for k in KEY_FIELDS if k not in ("period", "level")),
        *(sa.column(m, sa.Integer()) for m in MEASURE_FIELDS),
    )
    bind.execute(
        counters.insert(),
        [
            {**dict(zip(KEY_FIELDS, k, strict=True)), **dict(zip(MEASURE_FIELDS, v, strict=True))}
            for k, v in sums.items()
        ],
    )


def downgrade() -> None:
    op.drop_index('ix_stats_counters_period', table_name='stats_counters')
    op.drop_table('stats_counters')
    op.create_table('stats_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=40), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('dispute_type', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=40), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('organisation_id', sa.String(length=128), nullable=False),
    sa.Column('grid_code', sa.String(length=128), nullable=False),
    *(sa.Column(m, sa.Integer(), nullable=False) for m in (
        'cases', 'with_due', 'on_time', 'sat_sum', 'sat_n', 'first_tier', 'overdue')),
    sa.PrimaryKeyConstraint('day', 'status', 'source', 'dispute_type', 'channel', 'tier',
                            'severity', 'organisation_id', 'grid_code')
    )
