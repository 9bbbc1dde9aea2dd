"""Pure reporting rules: what one case adds to the daily aggregates, buckets, measures, headings.

No framework imports here: plain data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from services.followup.domain import as_utc, rate
from services.followup.ledger import SETTLED, TERMINAL, UNSETTLED, CaseProjection
from services.followup.warnings.domain import AREA_LEVELS, LOCAL, area_at, area_levels
from shared.auth import StaffPrincipal
from shared.scope import tiers_up_to

TIME_ZONE = "Asia/Shanghai"

# ---------------------------------------------------------------------------------------------
# Counters: what a case adds to the aggregates
#
# A counter row is one (span, period) × (level, area) × tier × (filter dimension = value) ×
# (group dimension = value) and holds the sums of the cases received in that period that match.
# span "d" counts per received day, "m" per received month, "w" per received week (Monday to
# Sunday, dated by its Monday; no filter, so a weekly series with one reads the day rows).
# Level 0 has two areas, "" for cases with no grid code and "*" for the others; levels 1, 2 and
# 4 hold located cases under their county, town and whole grid code, so a grid-code prefix of
# the scope rules is an index range of one level (see prefix_level: a village is a range of grid
# codes). A filter on a dimension that is also a group is that group's rows (no row of its own),
# and a filter on an unknown value has none (no route filters by one).
# Every query of /v1/stats, /v1/stats/series and /v1/areas/summary reads rows of one filter and
# a few group dimensions: a bounded number of rows whatever the number of cases.

SPAN_DAY, SPAN_WEEK, SPAN_MONTH = "d", "w", "m"
LEVELS = (1, 2, 4)  # county, town, grid (a village's rows are its grid codes' rows)
UNLOCATED, LOCATED = "", "*"  # the two areas of level 0
NONE = ""  # no filter / no grouping, and how an unknown value is stored
FILTER_DIMS = ("channel", "severity", "dispute_type", "source")
# what a day or week row is grouped by (series), and a month row (series by month, /v1/stats)
DAY_GROUPS = ("dispute_type", "channel", "source", "organisation_id")
MONTH_GROUPS = ("status", *DAY_GROUPS)
KEY_FIELDS = ("span", "period", "level", "area", "tier", "fdim", "fvalue", "gdim", "gvalue")
MEASURE_FIELDS = (
    "cases",
    "settled",
    "unsettled",
    "backlog",
    "overdue",
    "with_due",
    "on_time",
    "sat_sum",
    "sat_n",
    "first_tier",
)
GROUP_BY = {
    "dispute_type": "dispute_type",
    "channel": "channel",
    "tier": "tier",
    "source": "source",
    "area": "area",
    "organisation": "organisation_id",
}
BUCKETS = ("day", "week", "month")

Key = tuple[Any, ...]
Measures = tuple[int, ...]


def scope_area(grid_code: str, level: int) -> str:
    """The area a located case is counted under at a level (1–4).

    Its area at that level when the code reaches it, else the whole code; level 4 is always the
    whole code. Each is a prefix of the code at least as long as any prefix of `prefix_level`
    that level, so `code.startswith(p)` ⇔ `scope_area(code, prefix_level(p)).startswith(p)`.
    """
    if level >= 4:
        return grid_code
    return area_levels(grid_code).get(AREA_LEVELS[level - 1]) or grid_code


def prefix_level(prefix: str) -> int:
    """The level whose areas answer `grid_code.startswith(prefix)` exactly (1, 2 or 4: a
    village's prefix is a range of whole grid codes)."""
    level = max(1, min(4, len(area_levels(prefix))))
    return 4 if level == 3 else level


def kept_level(level: int) -> int:
    """The level whose rows answer a grouping by the areas of `level` (1–4): a village's are its
    grid codes' rows (the area of a stored code at any level is `area_group` of it)."""
    return 4 if level == 3 else level


def measures_of(p: CaseProjection) -> Measures:
    """What one case adds to every row it counts in, by its status now."""
    agreed, due = as_utc(p.agreed_at), as_utc(p.mediation_due)
    with_due = agreed is not None and due is not None
    settled, is_open = p.status in SETTLED, p.status not in TERMINAL
    return (
        1,
        int(settled),
        int(p.status in UNSETTLED),
        int(is_open),
        int(is_open and p.overdue),
        int(with_due),
        int(with_due and agreed <= due),  # type: ignore[operator]
        p.satisfaction or 0,
        int(p.satisfaction is not None),
        int(settled and p.tier is not None and p.tier == p.first_tier),
    )


def received_day(p: CaseProjection) -> date | None:
    """The day (Asia/Shanghai) a case was received; None when the ledger does not know."""
    when = as_utc(p.received_at or p.created_at)
    return when.astimezone(LOCAL).date() if when is not None else None


def _combos(
    values: Mapping[str, str],
    groups: Sequence[str],
    filters: bool = True,
    unknown_filters: bool = False,
) -> list[tuple[str, str, str, str]]:
    """(filter dim, value, group dim, value): none, one group, a filter that is no group, a
    filter and a group. A filter on a group dimension alone is its group row (`stored`).

    No filter on an unknown value (`unknown_filters` False): no query filters by one (the
    routes refuse an empty value), so a case not yet triaged counts in half the rows and
    moves half as many when it is. Unknown group values are kept: a grouping shows them."""
    out = [(NONE, NONE, NONE, NONE)]
    out += [(NONE, NONE, g, values[g]) for g in groups]
    for f in FILTER_DIMS if filters else ():
        if values[f] == NONE and not unknown_filters:
            continue
        if f not in groups:
            out.append((f, values[f], NONE, NONE))
        out += [(f, values[f], g, values[g]) for g in groups if g != f]
    return out


def stored(fdim: str, fvalue: str, gdim: str) -> tuple[str, str, str, str | None]:
    """The rows that hold filter `fdim = fvalue` grouped by `gdim` (NONE: no filter / no group):
    (fdim, fvalue, gdim, gvalue) to match, gvalue None for any. A filter alone on a dimension
    that is a group of both spans is that group's rows of its one value."""
    if gdim == NONE and fdim in DAY_GROUPS:
        return NONE, NONE, fdim, fvalue
    return fdim, fvalue, gdim, None


def cells(p: CaseProjection) -> list[tuple[int, str]]:
    """(level, area) a case counts under."""
    return list(_cells(p.grid_code or ""))


@lru_cache(maxsize=16384)
def _cells(grid: str) -> tuple[tuple[int, str], ...]:
    if not grid:
        return ((0, UNLOCATED),)
    return ((0, LOCATED), *((level, scope_area(grid, level)) for level in LEVELS))


_VALUE_FIELDS = ("channel", "severity", "dispute_type", "source", "organisation_id")


def counter_keys(p: CaseProjection, unknown_filters: bool = False) -> Sequence[Key]:
    """Every counter row a case counts in (it adds `measures_of(p)` to each).

    `unknown_filters`: the rows of a filter on an unknown value too, as revision e7a4c2b9d613
    kept them (its downgrade's recount)."""
    day = received_day(p)
    if day is None:
        return ()
    return _keys(
        day,
        p.status,
        *((getattr(p, f) or NONE)[:128] for f in _VALUE_FIELDS),
        p.tier or NONE,
        p.grid_code or "",
        unknown_filters,
    )


# a case's rows before an entry are those it was in after the one before (computed a batch
# earlier, or an entry earlier at a steady rate), and cases alike share them: kept for the
# recent ones (~140 keys each: ~6 MB when all 256 are distinct)
@lru_cache(maxsize=256)
def _keys(
    day: date,
    status: str,
    channel: str,
    severity: str,
    dispute_type: str,
    source: str,
    organisation_id: str,
    tier: str,
    grid: str,
    unknown_filters: bool,
) -> tuple[Key, ...]:
    values = {
        "status": status,
        "channel": channel,
        "severity": severity,
        "dispute_type": dispute_type,
        "source": source,
        "organisation_id": organisation_id,
    }
    where = _cells(grid)
    out: list[Key] = []
    for span, period, groups, filters in (
        (SPAN_DAY, day, DAY_GROUPS, True),
        (SPAN_WEEK, day - timedelta(days=day.weekday()), DAY_GROUPS, False),
        (SPAN_MONTH, day.replace(day=1), MONTH_GROUPS, True),
    ):
        combos = _combos(values, groups, filters, unknown_filters)
        heads = [(span, period, lv, area, tier) for lv, area in where]
        out += [h + c for h in heads for c in combos]
    return tuple(out)


def counter_changes(
    before: CaseProjection | None, after: CaseProjection | None
) -> dict[Key, Measures]:
    """What to add to which row when a case goes from `before` to `after` (zero rows left out).

    Every row of a case gets the same measures, so the difference is: the rows it left lose its
    old measures, the rows it joined gain its new ones, the rows it stays in gain the change.
    """
    zero = (0,) * len(MEASURE_FIELDS)
    old_keys = counter_keys(before) if before is not None else ()
    new_keys = counter_keys(after) if after is not None else ()
    old_m = measures_of(before) if before is not None and old_keys else zero
    new_m = measures_of(after) if after is not None and new_keys else zero
    delta = tuple(y - x for x, y in zip(old_m, new_m, strict=True))
    if old_keys == new_keys:
        return dict.fromkeys(new_keys, delta) if any(delta) else {}
    old_set, new_set = set(old_keys), set(new_keys)
    out: dict[Key, Measures] = {}
    if any(old_m):
        gone = tuple(-x for x in old_m)
        out.update((k, gone) for k in old_keys if k not in new_set)
    if any(new_m):
        out.update((k, new_m) for k in new_keys if k not in old_set)
    if any(delta):
        out.update((k, delta) for k in new_keys if k in old_set)
    return out


_BITS = 32  # a measure's field in a packed vector; a batch's sums stay far below 2**31
_MASK, _HALF = (1 << _BITS) - 1, 1 << (_BITS - 1)


def _pack(m: Measures) -> int:
    """The measures as one integer (field i at bits 32·i), so adding vectors is one addition."""
    out = 0
    for i, v in enumerate(m):
        out += v << (_BITS * i)
    return out


def _unpack(packed: int) -> Measures:
    out = []
    for _ in MEASURE_FIELDS:
        low = packed & _MASK
        if low >= _HALF:
            low -= 1 << _BITS
        out.append(low)
        packed = (packed - low) >> _BITS
    return tuple(out)


def summed_changes(
    moves: Iterable[tuple[CaseProjection | None, CaseProjection | None]],
) -> dict[Key, Measures]:
    """The changes of many cases (each from `before` to `after`) added up per row, rows whose
    sum is zero left out: the same as adding up their `counter_changes`.

    A case adds its new measures to each row it is in and takes its old ones from each row it
    was in (a row it stays in gets the difference). Measures are added as packed integers, one
    addition per row and case, and unpacked once per distinct sum.
    """
    sums: dict[Key, int] = {}
    get = sums.get
    for before, after in moves:
        old_keys = counter_keys(before) if before is not None else ()
        new_keys = counter_keys(after) if after is not None else ()
        old_m = measures_of(before) if before is not None and old_keys else None
        new_m = measures_of(after) if after is not None and new_keys else None
        if old_keys == new_keys and old_m == new_m:
            continue
        if old_m is not None:
            v = _pack(old_m)
            for k in old_keys:
                sums[k] = get(k, 0) - v
        if new_m is not None:
            v = _pack(new_m)
            for k in new_keys:
                sums[k] = get(k, 0) + v
    # a batch's rows share a handful of distinct sums (a case adds the same to each of its
    # rows): each unpacked once
    unpacked: dict[int, Measures] = {}
    out: dict[Key, Measures] = {}
    for k, v in sums.items():
        if v:
            m = unpacked.get(v)
            if m is None:
                m = unpacked[v] = _unpack(v)
            out[k] = m
    return out


# ---------------------------------------------------------------------------------------------
# Measures


@dataclass
class Totals:
    """Sums over counter rows, from which every measure of /v1/stats follows."""

    total: int = 0
    settled: int = 0
    unsettled: int = 0
    backlog: int = 0
    overdue: int = 0
    agreed_with_deadline: int = 0
    agreed_on_time: int = 0
    satisfaction_sum: int = 0
    satisfaction_count: int = 0
    settled_at_first_tier: int = 0

    def add(self, m: Sequence[int]) -> None:
        """Add one row's measures (ints, in MEASURE_FIELDS order)."""
        (
            total,
            settled,
            unsettled,
            backlog,
            overdue,
            with_due,
            on_time,
            sat_sum,
            sat_n,
            first_tier,
        ) = m
        self.total += total
        self.settled += settled
        self.unsettled += unsettled
        self.backlog += backlog
        self.overdue += overdue
        self.agreed_with_deadline += with_due
        self.agreed_on_time += on_time
        self.satisfaction_sum += sat_sum
        self.satisfaction_count += sat_n
        self.settled_at_first_tier += first_tier

    def as_dict(self) -> dict[str, int]:
        """The raw sums, as the ledger's own stats() names them."""
        return {
            "total": self.total,
            "settled": self.settled,
            "unsettled": self.unsettled,
            "agreed_with_deadline": self.agreed_with_deadline,
            "agreed_on_time": self.agreed_on_time,
            "satisfaction_sum": self.satisfaction_sum,
            "satisfaction_count": self.satisfaction_count,
            "settled_at_first_tier": self.settled_at_first_tier,
            "backlog": self.backlog,
            "overdue": self.overdue,
        }

    def measures(self) -> dict[str, Any]:
        """The flat measures of a series row (and of an export line)."""
        return measures_dict(
            (
                self.total,
                self.settled,
                self.unsettled,
                self.backlog,
                self.overdue,
                self.agreed_with_deadline,
                self.agreed_on_time,
                self.satisfaction_sum,
                self.satisfaction_count,
                self.settled_at_first_tier,
            )
        )


def measures_dict(m: Sequence[int]) -> dict[str, Any]:
    """The flat measures of a series row from summed measures (MEASURE_FIELDS order)."""
    total, settled, unsettled, backlog, overdue, with_due, on_time, sat_sum, n, first_tier = m
    return {
        "received": total,
        "settled": settled,
        "unsettled": unsettled,
        "success_rate": rate(settled, settled + unsettled),
        "agreed_with_deadline": with_due,
        "on_time": on_time,
        "on_time_rate": rate(on_time, with_due),
        "settled_at_first_tier": first_tier,
        "first_tier_rate": rate(first_tier, settled),
        "satisfaction_mean": round(sat_sum / n, 2) if n else None,
        "satisfaction_responses": n,
        "backlog": backlog,
        "overdue": overdue,
    }


# Chinese headings of the monthly 报表, in column order
HEADINGS: dict[str, str] = {
    "bucket": "统计时段",
    "group": "分组",
    "received": "受理数",
    "settled": "调解成功数",
    "unsettled": "调解未成功数",
    "success_rate": "调解成功率",
    "agreed_with_deadline": "有期限的协议数",
    "on_time": "按期化解数",
    "on_time_rate": "按期化解率",
    "settled_at_first_tier": "首级化解数",
    "first_tier_rate": "矛盾不上交率",
    "satisfaction_mean": "平均满意度",
    "satisfaction_responses": "满意度评价数",
    "backlog": "积压数",
    "overdue": "超期数",
}


# ---------------------------------------------------------------------------------------------
# Buckets and groups


def bucket_start(day: date, bucket: str) -> date:
    """The first day of the bucket a day falls in (weeks start on Monday)."""
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


def buckets(first: date, last: date, bucket: str) -> list[date]:
    """Every bucket start from the one holding `first` to the one holding `last`."""
    out: list[date] = []
    d = bucket_start(first, bucket)
    while d <= last:
        out.append(d)
        if bucket == "month":
            d = (d.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            d += timedelta(days=7 if bucket == "week" else 1)
    return out


UNLOCATED_AREA = "unlocated"  # the county-level group of the cases with no grid code


def area_group(grid_code: str | None, level: str) -> str | None:
    """The area group of a case's (or a warning's) grid code at one level.

    shared.scope.case_area: a case with no location lies in no town, village or grid, and only
    the county centre sees it; so it is counted at county level alone, as "unlocated", and left
    out of the areas of every lower level (None). A located code too short for the level is
    "unknown" there.
    """
    if not grid_code:
        return UNLOCATED_AREA if level == "county" else None
    return area_at(grid_code, level) or "unknown"


def group_key(value: str, group_by: str | None, level: str) -> str | None:
    """The group a stored value falls in ("" → "unknown"; areas cut to the asked level, None
    for an unlocated case below county level: see `area_group`)."""
    if group_by is None:
        return "all"
    if group_by == "area":
        return area_group(value, level)
    return value or "unknown"


def series(
    rows: Iterable[tuple[date, str, Sequence[int]]],
    first: date,
    last: date,
    bucket: str,
    group_by: str | None,
    level: str = "town",
) -> list[dict[str, Any]]:
    """Series rows (bucket × group) from (day or month start, group value, measures) rows.

    Every bucket of the period appears (zeros when nothing was received), once per group seen.
    A year by day is a thousand rows: sums are plain lists, each row's measures one dict.
    """
    sums: dict[tuple[date, str], list[int]] = {}
    labels: dict[str, str | None] = {}  # stored value → group (an area code is parsed once)
    starts: dict[date, date] = {}
    for day, value, m in rows:
        if value in labels:
            g = labels[value]
        else:
            g = labels[value] = group_key(value, group_by, level)
        if g is None:  # an unlocated case, below county level: in no area
            continue
        b = starts.get(day)
        if b is None:
            b = starts[day] = bucket_start(day, bucket)
        acc = sums.get((b, g))
        if acc is None:
            sums[(b, g)] = list(m)
        else:
            for i, v in enumerate(m):
                acc[i] += v
    groups = sorted({g for g in labels.values() if g is not None})
    if not groups and group_by is None:
        groups = ["all"]
    zero = measures_dict((0,) * len(MEASURE_FIELDS))
    out: list[dict[str, Any]] = []
    for b in buckets(first, last, bucket):
        iso = b.isoformat()
        for g in groups:
            acc = sums.get((b, g))
            out.append({"bucket": iso, "group": g, **(zero if acc is None else measures_dict(acc))})
    return out


def valid_level(level: str) -> bool:
    """Whether an area level is one of county, town, village, grid."""
    return level in AREA_LEVELS


def scope_public(staff: StaffPrincipal) -> dict[str, Any]:
    """The slice of the ledger a figure covers (shared.scope's rule), as a report prints it."""
    everything = staff.role == "admin" or (staff.role == "viewer" and not staff.grid_codes)
    return {
        "role": staff.role,
        "all_cases": everything,
        "channel": staff.channel if staff.role == "mediator" else None,
        "organisation_id": staff.organisation if staff.role == "mediator" else None,
        "tier": staff.tier if staff.role == "coordinator" else None,
        "tiers": list(tiers_up_to(staff.tier)) if staff.role == "coordinator" else None,
        "grid_prefixes": list(staff.grid_codes) if staff.role != "admin" else [],
    }
