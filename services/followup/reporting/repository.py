"""Counters per period × area × tier × dimension, kept up to date per ledger entry, so /v1/stats,
/v1/stats/series and /v1/areas/summary read a bounded number of rows, never the cases.

The rows a case counts in and what it adds are pure rules (reporting.domain.counter_keys); the
ledger hook adds the difference between a case's rows before and after each entry, in the
projection's transaction. Scope (DOMAIN.md §7) is applied on the rows: tiers as a column, grid
prefixes as an index range of one area level, unlocated cases as their own area.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import chain
from typing import Any

from sqlalchemy import String, event
from sqlmodel import Field, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.followup.domain import CaseFilters, Scope
from services.followup.ledger import CaseProjection
from services.followup.reporting.domain import (
    FILTER_DIMS,
    KEY_FIELDS,
    LOCATED,
    MEASURE_FIELDS,
    NONE,
    SPAN_DAY,
    SPAN_MONTH,
    SPAN_WEEK,
    UNLOCATED,
    Key,
    Measures,
    Totals,
    counter_changes,
    counter_keys,
    kept_level,
    measures_of,
    prefix_level,
    received_day,
    stored,
    summed_changes,
)
from services.followup.repository import FollowupBase, LedgerCase, case_conditions
from shared.contracts import TrailAppended
from shared.db import Tx
from shared.scope import COUNTY, tiers_up_to

# byte order on PostgreSQL too, so a prefix is an exact index range whatever the locale
AREA = String(128).with_variant(String(128, collation="C"), "postgresql")


class StatCounter(FollowupBase, table=True):
    """The sums of the cases received in one period that share an area, a tier, a filter value
    and a group value (see reporting.domain)."""

    __tablename__ = "stats_counters"
    # no other index: every read names the key's columns before the period (d3a9f1c7b2e4);
    # room on each page for its rows' updates, heap-only on PostgreSQL (f6c2a8d4b1e7)
    __table_args__ = ({"sqlite_with_rowid": False, "postgresql_with": {"fillfactor": 70}},)
    span: str = Field(primary_key=True, max_length=1)
    fdim: str = Field(primary_key=True, max_length=16)
    fvalue: str = Field(primary_key=True, max_length=128)
    gdim: str = Field(primary_key=True, max_length=16)
    level: int = Field(primary_key=True)
    area: str = Field(primary_key=True, sa_type=AREA)
    period: date = Field(primary_key=True)
    tier: str = Field(primary_key=True, max_length=16)
    gvalue: str = Field(primary_key=True, max_length=128)
    cases: int = 0
    settled: int = 0
    unsettled: int = 0
    backlog: int = 0
    overdue: int = 0
    with_due: int = 0
    on_time: int = 0
    sat_sum: int = 0
    sat_n: int = 0
    first_tier: int = 0


T = StatCounter.__table__  # type: ignore[attr-defined]
PRIMARY_KEY = [c.name for c in T.primary_key.columns]


def _upsert_sql(dialect: str) -> str:
    columns = (*KEY_FIELDS, *MEASURE_FIELDS)
    if dialect == "postgresql":
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    else:
        marks = ", ".join("?" for _ in columns)
    adds = ", ".join(f"{m} = {T.name}.{m} + excluded.{m}" for m in MEASURE_FIELDS)
    return (
        f"INSERT INTO {T.name} ({', '.join(columns)}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(PRIMARY_KEY)}) DO UPDATE SET {adds}"
    )


UPSERT = {d: _upsert_sql(d) for d in ("sqlite", "postgresql")}
PER_STATEMENT = 50  # SQLite: rows per INSERT (19 parameters each, under the 999 of old builds)
_MARKS = "(" + ", ".join("?" for _ in (*KEY_FIELDS, *MEASURE_FIELDS)) + ")"
UPSERT_MANY = UPSERT["sqlite"].replace(
    f"VALUES {_MARKS}", "VALUES " + ", ".join([_MARKS] * PER_STATEMENT)
)


def statements(dialect: str, rows: list[tuple[Any, ...]]) -> list[tuple[str, list[Any]]]:
    """The upsert as (statement, executemany parameters). On SQLite whole groups of
    PER_STATEMENT rows go as one multi-row INSERT each (a statement per row costs its own step
    and reset: 15% of the upsert's time), the rest one row per execution."""
    if dialect != "sqlite" or len(rows) < PER_STATEMENT:
        return [(UPSERT[dialect], rows)]
    whole = len(rows) - len(rows) % PER_STATEMENT
    flat = list(chain.from_iterable(rows[:whole]))
    step = len(flat) // (whole // PER_STATEMENT)
    groups = [tuple(flat[i : i + step]) for i in range(0, len(flat), step)]
    out: list[tuple[str, list[Any]]] = [(UPSERT_MANY, groups)]
    if whole < len(rows):
        out.append((UPSERT[dialect], rows[whole:]))
    return out


def upsert_rows(dialect: str, changes: dict[Key, Measures]) -> list[tuple[Any, ...]]:
    """The upsert's parameters, in key order (one lock order for all). On SQLite the period is
    passed as the text SQLAlchemy stores a Date as, spelled once per day: the driver's date
    adapter is a Python call per row."""
    keys = sorted(changes)  # keys alone: their order, cheaper
    if dialect == "postgresql":
        return [(*k, *changes[k]) for k in keys]
    days: dict[date, str] = {}
    out = []
    for k in keys:
        day = days.get(k[1])
        if day is None:
            day = days[k[1]] = k[1].isoformat()
        out.append((k[0], day, *k[2:], *changes[k]))
    return out


async def apply(session: AsyncSession, changes: dict[Key, Measures]) -> None:
    """Add each change to its row (created at zero), in key order (one lock order for all).

    Plain statements, executemany (`statements`): a change touches a few dozen to a few
    hundred rows, and SQLAlchemy's per-row compilation and bind processing would cost more
    than the database.
    """
    conn = await session.connection()
    for sql, params in statements(conn.dialect.name, upsert_rows(conn.dialect.name, changes)):
        await conn.exec_driver_sql(sql, params)


MEMO = "followup.stats_counters"  # a batch's cases: case id → (before the batch, after it)


class StatsAggregates:
    """The ledger hook that moves a case's counts when an entry changes it.

    Alone, an entry's change is applied at once. In a partition batch (Delivery.batch) only each
    case's projection before its first entry and after its last is kept; when the batch commits,
    the changes of all its cases are added up per row and applied with one executemany in the
    same transaction, so a case whose five entries arrive together moves its rows once and
    rows shared by the batch's cases are written once.
    """

    async def after_entry(
        self, tx: Tx, ev: TrailAppended, before: CaseProjection | None, after: CaseProjection
    ) -> None:
        """Take the case out of the rows it left and into the rows it joined."""
        if tx.batch is None:
            changes = counter_changes(before, after)
            if changes:
                await apply(tx.session, changes)
            return
        moves: dict[str, tuple[CaseProjection | None, CaseProjection]] | None
        moves = tx.batch.memo.get(MEMO)
        if moves is None:
            moves = tx.batch.memo[MEMO] = {}
            _apply_before_commit(tx.session, moves)
        first = moves.get(after.case_id)
        moves[after.case_id] = (first[0] if first is not None else before, after)


def _apply_before_commit(
    session: AsyncSession, moves: dict[str, tuple[CaseProjection | None, CaseProjection]]
) -> None:
    """Apply a batch's summed changes as its session commits (after the batch's last event).

    SQLAlchemy runs the session's `before_commit` inside the async session's greenlet, so the
    synchronous connection there does its I/O on the async driver; a batch that fails never
    commits, and its changes go with it.
    """

    def flush(sync_session: Any) -> None:
        changes = summed_changes(moves.values())
        if changes:
            conn = sync_session.connection()
            dialect = conn.dialect.name
            for sql, params in statements(dialect, upsert_rows(dialect, changes)):
                conn.exec_driver_sql(sql, params)

    event.listen(session.sync_session, "before_commit", flush, once=True)


# ---------------------------------------------------------------------------------------------
# Scope on the counters


@dataclass(frozen=True)
class Region:
    """Rows of one area level: every area, one area, or the areas under a prefix."""

    level: int
    area: str | None = None
    prefix: str | None = None


@dataclass(frozen=True)
class Cut:
    """Which counter rows a member of staff's scope covers."""

    regions: tuple[Region, ...]
    tiers: tuple[str, ...] | None = None  # None: every tier ("" = not routed yet)


def _outermost(prefixes: Sequence[str]) -> list[str]:
    """Prefixes none of which starts with another (so their cases never overlap)."""
    out: list[str] = []
    for p in sorted({p for p in prefixes if p}, key=len):
        if not any(p.startswith(q) for q in out):
            out.append(p)
    return out


def _areas(prefixes: Sequence[str], unlocated: bool, level: int) -> tuple[Region, ...]:
    """shared.scope's area rule as regions; `level` is the least level the grouping needs."""
    level = kept_level(level) if level else 0
    real = _outermost(prefixes)
    located: tuple[Region, ...]
    if real:
        located = tuple(Region(max(prefix_level(p), level), prefix=p) for p in real)
    else:
        located = (Region(level),) if level else (Region(0, area=LOCATED),)
    if not unlocated:
        return located
    if not real and not level:
        return (Region(0),)
    return (*located, Region(0, area=UNLOCATED))


def cut_of(scope: Scope, level: int = 0) -> Cut | None:
    """The counter rows of a scope (shared.scope.scope_filter's rule); None when the counters
    cannot answer it (a mediator's scope follows organisations and co-handling channels)."""
    if scope.role == "admin":
        return Cut(_areas((), True, level))
    if scope.role == "viewer":
        return Cut(_areas(scope.grid_codes, not scope.grid_codes, level))
    if scope.role == "coordinator":
        tiers = tiers_up_to(scope.tier)
        if not tiers:
            return Cut(())
        county = scope.tier == COUNTY
        regions = _areas(scope.grid_codes, county or not scope.grid_codes, level)
        return Cut(regions, (*tiers, NONE) if county else tiers)
    if scope.role == "mediator":
        return None
    return Cut(())


def _next(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class _Sql:
    """A statement's text and positional parameters for one dialect (plain driver SQL: a year by
    day is a thousand rows, and SQLAlchemy's compilation and result processing would cost more
    than the database)."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"
        self.params: list[Any] = []

    def p(self, value: Any) -> str:
        if isinstance(value, date) and not self.pg:
            value = value.isoformat()  # how SQLAlchemy stores a Date in SQLite
        self.params.append(value)
        return f"${len(self.params)}" if self.pg else "?"

    def any_of(self, values: Sequence[Any]) -> str:
        return ", ".join(self.p(v) for v in values)


MAX_AREAS = 64  # a prefix with more areas than this is read as a range


async def _areas_under(session: AsyncSession, level: int, prefix: str) -> list[str] | None:
    """The areas of a level under a prefix, one index seek each (None: more than MAX_AREAS).

    A prefix is a range of the key's `area`, and a range there stops the index from seeking
    `period` (every period of the area is read, then filtered): named areas let it seek.
    """
    dialect = session.get_bind().dialect.name
    out: list[str] = []
    after, op = prefix, ">="
    while len(out) <= MAX_AREAS:
        q = _Sql(dialect)
        where = [
            f"span = {q.p(SPAN_DAY)}",
            *_combo(q, NONE, NONE, (NONE,)),
            f"level = {q.p(level)}",
            f"area {op} {q.p(after)} AND area < {q.p(_next(prefix))}",
        ]
        sql = f"SELECT MIN(area) FROM {T.name} WHERE {' AND '.join(where)}"
        row = await _rows(session, q, sql)
        if not row or row[0][0] is None:
            return out
        after, op = row[0][0], ">"
        out.append(after)
    return None


def _where(
    q: _Sql, region: Region, cut: Cut, tier: str | None, areas: Sequence[str] | None = None
) -> list[str]:
    out = [f"level = {q.p(region.level)}"]
    if region.area is not None:
        out.append(f"area = {q.p(region.area)}")
    elif region.level == 0 and not q.pg:
        # both areas named: SQLite then seeks the key's period range too (PostgreSQL's planner
        # misjudges the IN and sorts; it reads the level's rows faster without it)
        out.append(f"area IN ({q.any_of((UNLOCATED, LOCATED))})")
    if region.prefix and areas is not None:
        out.append(f"area IN ({q.any_of(areas)})")
    elif region.prefix:
        out.append(f"area >= {q.p(region.prefix)} AND area < {q.p(_next(region.prefix))}")
    if cut.tiers is not None:
        out.append(f"tier IN ({q.any_of(cut.tiers)})")
    if tier is not None:
        out.append(f"tier = {q.p(tier)}")
    return out


def _combo(q: _Sql, fdim: str, fvalue: str, gdims: Sequence[str]) -> list[str]:
    """The rows of filter `fdim = fvalue` grouped by each of `gdims` (see domain.stored)."""
    if len(gdims) == 1:
        sf, sfv, sg, sgv = stored(fdim, fvalue, gdims[0])
        out = [f"fdim = {q.p(sf)}", f"fvalue = {q.p(sfv)}", f"gdim = {q.p(sg)}"]
        return out if sgv is None else [*out, f"gvalue = {q.p(sgv)}"]
    assert all(stored(fdim, fvalue, g)[3] is None for g in gdims)
    return [f"fdim = {q.p(fdim)}", f"fvalue = {q.p(fvalue)}", f"gdim IN ({q.any_of(gdims)})"]


SUMS = ", ".join(f"SUM({m})" for m in MEASURE_FIELDS)


def one_filter(filters: CaseFilters) -> tuple[str, str] | None:
    """The one dimension filter the counters cross with (tier is a column); None for two."""
    set_ = [(f, getattr(filters, f)) for f in FILTER_DIMS if getattr(filters, f) is not None]
    if len(set_) > 1:
        return None
    return set_[0] if set_ else (NONE, NONE)


def _measures(row: Sequence[Any]) -> Measures:
    return tuple(int(v or 0) for v in row)


async def _rows(session: AsyncSession, q: _Sql, sql: str) -> Sequence[Any]:
    conn = await session.connection()
    return (await conn.exec_driver_sql(sql, tuple(q.params))).all()


# ---------------------------------------------------------------------------------------------
# Reads


STAT_DIMENSIONS = ("status", "channel", "tier", "dispute_type", "source")


async def stats(session: AsyncSession, filters: CaseFilters, scope: Scope) -> dict[str, Any] | None:
    """What /v1/stats answers, from the month rows; None when the counters cannot answer."""
    cut, f = cut_of(scope), one_filter(filters)
    if cut is None or f is None:
        return None
    fdim, fvalue = f
    dialect = session.get_bind().dialect.name
    crossed = [g for g in ("status", "channel", "dispute_type", "source") if g != fdim]
    # (filter, value, group dimensions) to read: the totals are the filter's own rows
    reads = (
        [(fdim, fvalue, (NONE, *crossed))]
        if fdim == NONE
        else [
            (fdim, fvalue, (NONE,)),
            (fdim, fvalue, tuple(crossed)),
        ]
    )
    by: dict[str, dict[str, int]] = {f"by_{d}": {} for d in STAT_DIMENSIONS}
    t = Totals()
    for region in cut.regions:
        for rf, rv, gdims in reads:
            q = _Sql(dialect)
            where = [
                f"span = {q.p(SPAN_MONTH)}",
                *_combo(q, rf, rv, gdims),
                *_where(q, region, cut, filters.tier),
            ]
            sql = (
                f"SELECT gdim, gvalue, tier, {SUMS} FROM {T.name} WHERE {' AND '.join(where)} "
                "GROUP BY gdim, gvalue, tier"
            )
            for gdim, gvalue, tier, *sums in await _rows(session, q, sql):
                m = _measures(sums)
                if not m[0]:
                    continue
                if gdim == NONE or gdims == (NONE,):  # the totals (maybe a group's own rows)
                    t.add(m)
                    _count(by["by_tier"], tier, m[0])
                    if f"by_{fdim}" in by:  # by_channel of channel=people: {"people": n}
                        _count(by[f"by_{fdim}"], fvalue, m[0])
                else:
                    _count(by[f"by_{gdim}"], gvalue, m[0])
    return {**by, "totals": t.as_dict()}


def _count(bucket: dict[str, int], value: str, n: int) -> None:
    name = value or "unknown"
    bucket[name] = bucket.get(name, 0) + n


Ranges = list[tuple[date, date]]


def pieces(first: date, last: date, bucket: str | None, weeks: bool) -> dict[str, Ranges]:
    """The rows that sum to a period, per span, as ranges of their periods. Day buckets: the day
    rows. Week buckets: whole weeks (Monday to Sunday) from the week rows when `weeks` (no
    filter), the days at either end from the day rows. Month buckets and the whole period:
    whole months from the month rows, the days at either end from the day rows."""
    if bucket == "day" or (bucket == "week" and not weeks):
        return {SPAN_DAY: [(first, last)]}
    if bucket == "week":
        span = SPAN_WEEK
        start = first + timedelta(days=-first.weekday() % 7)  # the first Monday on or after
        stop = last - timedelta(days=(last.weekday() + 1) % 7)  # the last Sunday on or before
        rows = (start, stop - timedelta(days=6))  # week rows are dated by their Monday
    else:
        span = SPAN_MONTH
        start = first if first.day == 1 else (first.replace(day=28) + timedelta(days=4))
        start = start.replace(day=1)  # the first month start on or after `first`
        stop = (last + timedelta(days=1)).replace(day=1) - timedelta(days=1)  # last month end
        rows = (start, stop)
    if start > stop:  # no whole week or month inside
        return {SPAN_DAY: [(first, last)]}
    days = [(first, start - timedelta(days=1))] if first < start else []
    if stop < last:
        days.append((stop + timedelta(days=1), last))
    return {SPAN_DAY: days, span: [rows]}


async def counted(
    session: AsyncSession,
    filters: CaseFilters,
    scope: Scope,
    first: date,
    last: date,
    group: str | None,
    *,
    level: int = 0,
    months: bool = False,
    bucket: str | None = "day",
) -> list[tuple[date, str, Measures]] | None:
    """(bucket start, group value, measures) over a period; None when the counters cannot
    answer (then `counted_from_cases`).

    `group`: None, "tier", "area" (the areas of `level`, 1–4) or a group dimension.
    `bucket`: "day", "week" or "month": the database sums the rows of each bucket (the start
    of the bucket each row falls in, or of a later one, is what comes back); None: the whole
    period in one sum per group, dated `first`. Whole weeks (no filter) are read from the week
    rows, whole months from the month rows (month buckets and whole periods), the rest from the
    day rows (`pieces`). `months` is kept for callers: it changes nothing.
    """
    del months
    cut, f = cut_of(scope, level if group == "area" else 0), one_filter(filters)
    if cut is None or f is None:
        return None
    fdim, fvalue = f
    gdim = NONE if group in (None, "tier", "area") or group == fdim else group
    label = {"tier": "tier", "area": "area"}.get(group or "", "gvalue")
    dialect = session.get_bind().dialect.name
    spans = pieces(first, last, bucket, fdim == NONE)
    out: list[tuple[date, str, Measures]] = []
    dates: dict[Any, date] = {}
    named: dict[Region, list[str] | None] = {}
    for region in cut.regions:
        if region.prefix:
            named[region] = await _areas_under(session, region.level, region.prefix)
    for span, ranges in spans.items():
        if not ranges:
            continue
        start = _bucket_start(dialect, bucket, span)
        keys = label if start is None else f"{start}, {label}"
        # one statement per range: the days at either end of a year are a few days each, and
        # one range around both would read the whole year's day rows between them
        for (lo, hi), region in ((r, g) for r in ranges for g in cut.regions):
            areas = named.get(region)
            if areas == []:  # nothing counted under the prefix
                continue
            q = _Sql(dialect)
            where = [
                f"span = {q.p(span)}",
                *_combo(q, fdim, fvalue, (gdim,)),
                *_where(q, region, cut, filters.tier, areas),
                f"period >= {q.p(lo)} AND period <= {q.p(hi)}",
            ]
            sql = f"SELECT {keys}, {SUMS} FROM {T.name} WHERE {' AND '.join(where)} GROUP BY {keys}"
            for row in await _rows(session, q, sql):
                if start is None:
                    day, value, sums = first, row[0], row[1:]
                else:
                    known = dates.get(row[0])
                    if known is None:
                        known = dates[row[0]] = _as_date(row[0])
                    day, value, sums = known, row[1], row[2:]
                m = _measures(sums)
                if m[0]:
                    value = fvalue if group is not None and group == fdim else value
                    out.append((day, "" if group is None else value, m))
    return out


def _bucket_start(dialect: str, bucket: str | None, span: str = SPAN_DAY) -> str | None:
    """The SQL of the first day of the bucket a row's period falls in (weeks start on Monday;
    a week row's period is its Monday)."""
    if bucket is None:
        return None
    if bucket == "day" or (bucket == "week" and span == SPAN_WEEK):
        return "period"
    if bucket == "month" and span == SPAN_MONTH:
        return "period"
    if dialect == "postgresql":
        return f"CAST(date_trunc('{bucket}', period) AS DATE)"
    if bucket == "week":  # the Sunday on or after, less six days
        return "date(period, 'weekday 0', '-6 days')"
    return "substr(period, 1, 8) || '01'"


async def counted_from_cases(
    session: AsyncSession,
    filters: CaseFilters,
    scope: Scope,
    first: date,
    last: date,
    group: str | None,
) -> list[tuple[date, str, Measures]]:
    """The same rows computed from the cases in scope (mediators, several filters at once)."""
    out = []
    for row in (
        await session.exec(select(LedgerCase).where(*case_conditions(filters, scope)))
    ).all():
        p = row.projection()
        day = received_day(p)
        if day is None or not first <= day <= last:
            continue
        column = "grid_code" if group == "area" else group
        value = (getattr(p, column) or "") if column else ""
        out.append((day, value, measures_of(p)))
    return out


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def all_rows(session: AsyncSession) -> dict[Key, Measures]:
    """Every counter row that counts something (tests compare them with a recount)."""
    out = {}
    for r in (await session.exec(select(StatCounter))).all():
        m = tuple(getattr(r, f) for f in MEASURE_FIELDS)
        if any(m):
            out[tuple(getattr(r, k) for k in KEY_FIELDS)] = m
    return out


async def recount(session: AsyncSession) -> dict[Key, Measures]:
    """The counters recomputed from every case of the ledger (a full scan: tests, repair)."""
    out: dict[Key, list[int]] = {}
    for row in (await session.exec(select(LedgerCase).order_by(col(LedgerCase.version)))).all():
        p = row.projection()
        m = measures_of(p)
        for key in counter_keys(p):
            sums = out.setdefault(key, [0] * len(MEASURE_FIELDS))
            for i, v in enumerate(m):
                sums[i] += v
    return {k: tuple(v) for k, v in out.items() if any(v)}
