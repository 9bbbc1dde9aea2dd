"""Daily aggregates (day × status × source × type × channel × tier × severity × organisation ×
grid code), kept up to date per ledger entry so stats, series and area summaries never scan cases.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, delete, func
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.followup.domain import CaseFilters, Scope
from services.followup.ledger import CaseProjection
from services.followup.reporting.domain import (
    KEY_FIELDS,
    MEASURE_FIELDS,
    Contribution,
    Totals,
    contribution,
)
from services.followup.repository import FollowupBase, LedgerCase, _scope_conditions
from shared.contracts import TrailAppended
from shared.db import Tx
from shared.scope import ScopeColumns


class DailyStat(FollowupBase, table=True):
    """The sums of the cases received on one day (Asia/Shanghai) that share every dimension."""

    __tablename__ = "stats_daily"
    day: date = Field(primary_key=True)
    status: str = Field(primary_key=True, max_length=40)
    source: str = Field(primary_key=True, max_length=16)
    dispute_type: str = Field(primary_key=True, max_length=40)
    channel: str = Field(primary_key=True, max_length=40)
    tier: str = Field(primary_key=True, max_length=16)
    severity: str = Field(primary_key=True, max_length=16)
    organisation_id: str = Field(primary_key=True, max_length=128)
    grid_code: str = Field(primary_key=True, max_length=128)
    cases: int = 0
    with_due: int = 0
    on_time: int = 0
    sat_sum: int = 0
    sat_n: int = 0
    first_tier: int = 0
    overdue: int = 0


T = DailyStat.__table__  # type: ignore[attr-defined]


async def apply(session: AsyncSession, c: Contribution, sign: int) -> None:
    """Add (sign 1) or take away (sign -1) one case's contribution, atomically per row."""
    values = {
        **dict(zip(KEY_FIELDS, c.key, strict=True)),
        **{m: sign * v for m, v in zip(MEASURE_FIELDS, c.measures, strict=True)},
    }
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(T).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(KEY_FIELDS),
        set_={m: T.c[m] + stmt.excluded[m] for m in MEASURE_FIELDS},
    )
    await session.exec(stmt)
    if sign < 0:  # a row no case counts in any more goes away
        where = [T.c[k] == v for k, v in zip(KEY_FIELDS, c.key, strict=True)]
        await session.exec(delete(T).where(and_(*where), T.c.cases == 0))


class StatsAggregates:
    """The ledger hook that moves a case's contribution when an entry changes it."""

    async def after_entry(
        self, tx: Tx, ev: TrailAppended, before: CaseProjection | None, after: CaseProjection
    ) -> None:
        """Take the case out of its old row and into its new one (when they differ)."""
        old = contribution(before) if before is not None else None
        new = contribution(after)
        if old == new:
            return
        if old is not None:
            await apply(tx.session, old, -1)
        if new is not None:
            await apply(tx.session, new, 1)


# ---------------------------------------------------------------------------------------------
# Reads


# "" is how the aggregates store an unknown value; scope rules test NULL for "not routed yet"
AGGREGATE_SCOPE = ScopeColumns(
    tier=func.nullif(T.c.tier, ""),
    grid_code=T.c.grid_code,
    organisation_id=T.c.organisation_id,
    channel=T.c.channel,
)


def conditions(filters: CaseFilters, scope: Scope) -> list[Any]:
    """The scope and the dashboard filters on the aggregate rows."""
    out = _scope_conditions(scope, AGGREGATE_SCOPE)
    for name in ("status", "channel", "tier", "severity", "dispute_type", "source"):
        value = getattr(filters, name)
        if value is not None:
            out.append(T.c[name] == value)
    return out


def _sums() -> list[Any]:
    return [func.coalesce(func.sum(T.c[m]), 0) for m in MEASURE_FIELDS]


STAT_DIMENSIONS = ("status", "channel", "tier", "dispute_type", "source")


async def stats(session: AsyncSession, filters: CaseFilters, scope: Scope) -> dict[str, Any]:
    """What /v1/stats answers, from the aggregates (same shape as the ledger's stats())."""
    dims = [T.c[d] for d in STAT_DIMENSIONS]
    stmt: Any = sa_select(*dims, *_sums()).where(*conditions(filters, scope)).group_by(*dims)
    by: dict[str, dict[str, int]] = {f"by_{d}": {} for d in STAT_DIMENSIONS}
    t = Totals()
    for row in (await session.exec(stmt)).all():
        keys, m = row[:5], dict(zip(MEASURE_FIELDS, row[5:], strict=True))
        if not m["cases"]:
            continue
        for dim, key in zip(STAT_DIMENSIONS, keys, strict=True):
            bucket = by[f"by_{dim}"]
            name = key or "unknown"
            bucket[name] = bucket.get(name, 0) + int(m["cases"])
        t.add(keys[0], m)
    return {
        **by,
        "totals": {
            "total": t.total,
            "settled": t.settled,
            "unsettled": t.unsettled,
            "agreed_with_deadline": t.agreed_with_deadline,
            "agreed_on_time": t.agreed_on_time,
            "satisfaction_sum": t.satisfaction_sum,
            "satisfaction_count": t.satisfaction_count,
            "settled_at_first_tier": t.settled_at_first_tier,
            "backlog": t.backlog,
            "overdue": t.overdue,
        },
    }


async def daily(
    session: AsyncSession,
    filters: CaseFilters,
    scope: Scope,
    first: date,
    last: date,
    column: str | None,
) -> list[tuple[date, str, str, dict[str, int]]]:
    """(day, status, value of the grouping column, measures) over a period, summed."""
    group = [T.c.day, T.c.status] + ([T.c[column]] if column else [])
    stmt: Any = (
        sa_select(*group, *_sums())
        .where(*conditions(filters, scope), T.c.day >= first, T.c.day <= last)
        .group_by(*group)
    )
    out = []
    n = len(group)
    for row in (await session.exec(stmt)).all():
        m = dict(zip(MEASURE_FIELDS, (int(v) for v in row[n:]), strict=True))
        if m["cases"]:
            value = row[2] if column else ""
            out.append((_as_date(row[0]), row[1], value, m))
    return out


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def all_rows(session: AsyncSession) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """Every aggregate row (tests compare them with a recount)."""
    out = {}
    for r in (await session.exec(select(DailyStat))).all():
        key = tuple(getattr(r, k) for k in KEY_FIELDS)
        out[key] = tuple(getattr(r, m) for m in MEASURE_FIELDS)
    return out


async def recount(session: AsyncSession) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """The aggregates recomputed from every case of the ledger (a full scan: tests, repair)."""
    out: dict[tuple[Any, ...], list[int]] = {}
    for row in (await session.exec(select(LedgerCase).order_by(col(LedgerCase.version)))).all():
        c = contribution(row.projection())
        if c is None:
            continue
        sums = out.setdefault(c.key, [0] * len(MEASURE_FIELDS))
        for i, v in enumerate(c.measures):
            sums[i] += v
    return {k: tuple(v) for k, v in out.items()}
