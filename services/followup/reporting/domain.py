"""Pure reporting rules: what one case adds to the daily aggregates, buckets, measures, headings.

No framework imports here: plain data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.followup.domain import as_utc, rate
from services.followup.ledger import SETTLED, TERMINAL, UNSETTLED, CaseProjection
from services.followup.warnings.domain import AREA_LEVELS, LOCAL, area_at
from shared.auth import StaffPrincipal
from shared.scope import tiers_up_to

TIME_ZONE = "Asia/Shanghai"
# the dimensions of an aggregate row (its key), as stored; None is stored as ""
KEY_FIELDS = (
    "day",
    "status",
    "source",
    "dispute_type",
    "channel",
    "tier",
    "severity",
    "organisation_id",
    "grid_code",
)
MEASURE_FIELDS = ("cases", "with_due", "on_time", "sat_sum", "sat_n", "first_tier", "overdue")
GROUP_BY = {
    "dispute_type": "dispute_type",
    "channel": "channel",
    "tier": "tier",
    "source": "source",
    "area": "grid_code",
    "organisation": "organisation_id",
}
BUCKETS = ("day", "week", "month")


@dataclass(frozen=True)
class Contribution:
    """What one case adds to one aggregate row: its key and its measures."""

    key: tuple[Any, ...]
    measures: tuple[int, ...]


def contribution(p: CaseProjection) -> Contribution | None:
    """The aggregate row a case counts in (by the day it was received, Asia/Shanghai)."""
    when = as_utc(p.received_at or p.created_at)
    if when is None:
        return None
    day = when.astimezone(LOCAL).date()
    agreed, due = as_utc(p.agreed_at), as_utc(p.mediation_due)
    with_due = agreed is not None and due is not None
    key = (
        day,
        p.status,
        *(
            (getattr(p, f) or "")[:128]
            for f in (
                "source",
                "dispute_type",
                "channel",
                "tier",
                "severity",
                "organisation_id",
                "grid_code",
            )
        ),
    )
    measures = (
        1,
        int(with_due),
        int(with_due and agreed <= due),  # type: ignore[operator]
        p.satisfaction or 0,
        int(p.satisfaction is not None),
        int(p.tier is not None and p.tier == p.first_tier),
        int(p.overdue),
    )
    return Contribution(key, measures)


# ---------------------------------------------------------------------------------------------
# Measures


@dataclass
class Totals:
    """Sums over aggregate rows, from which every measure of /v1/stats follows."""

    total: int = 0
    settled: int = 0
    unsettled: int = 0
    agreed_with_deadline: int = 0
    agreed_on_time: int = 0
    satisfaction_sum: int = 0
    satisfaction_count: int = 0
    settled_at_first_tier: int = 0
    backlog: int = 0
    overdue: int = 0

    def add(self, status: str, m: Mapping[str, int]) -> None:
        """Add one aggregate row of a status."""
        n = int(m["cases"])
        self.total += n
        self.agreed_with_deadline += int(m["with_due"])
        self.agreed_on_time += int(m["on_time"])
        self.satisfaction_sum += int(m["sat_sum"])
        self.satisfaction_count += int(m["sat_n"])
        if status in SETTLED:
            self.settled += n
            self.settled_at_first_tier += int(m["first_tier"])
        elif status in UNSETTLED:
            self.unsettled += n
        if status not in TERMINAL:
            self.backlog += n
            self.overdue += int(m["overdue"])

    def measures(self) -> dict[str, Any]:
        """The flat measures of a series row (and of an export line)."""
        n = self.satisfaction_count
        return {
            "received": self.total,
            "settled": self.settled,
            "unsettled": self.unsettled,
            "success_rate": rate(self.settled, self.settled + self.unsettled),
            "agreed_with_deadline": self.agreed_with_deadline,
            "on_time": self.agreed_on_time,
            "on_time_rate": rate(self.agreed_on_time, self.agreed_with_deadline),
            "settled_at_first_tier": self.settled_at_first_tier,
            "first_tier_rate": rate(self.settled_at_first_tier, self.settled),
            "satisfaction_mean": round(self.satisfaction_sum / n, 2) if n else None,
            "satisfaction_responses": n,
            "backlog": self.backlog,
            "overdue": self.overdue,
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


def group_key(value: str, group_by: str | None, level: str) -> str:
    """The group a stored value falls in ("" → "unknown"; areas cut to the asked level)."""
    if group_by is None:
        return "all"
    if group_by == "area":
        return area_at(value, level) or "unknown"
    return value or "unknown"


def series(
    rows: Iterable[tuple[date, str, str, Mapping[str, int]]],
    first: date,
    last: date,
    bucket: str,
    group_by: str | None,
    level: str = "town",
) -> list[dict[str, Any]]:
    """Series rows (bucket × group) from (day, status, group value, measures) aggregate rows.

    Every bucket of the period appears (zeros when nothing was received), once per group seen.
    """
    sums: dict[tuple[date, str], Totals] = {}
    groups: set[str] = set()
    for day, status, value, m in rows:
        g = group_key(value, group_by, level)
        groups.add(g)
        sums.setdefault((bucket_start(day, bucket), g), Totals()).add(status, m)
    if not groups:
        groups = {"all"} if group_by is None else set()
    out: list[dict[str, Any]] = []
    for b in buckets(first, last, bucket):
        for g in sorted(groups):
            t = sums.get((b, g), Totals())
            out.append({"bucket": b.isoformat(), "group": g, **t.measures()})
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
