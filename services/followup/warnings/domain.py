"""Pure early-warning rules (DOMAIN.md §8): thresholds, areas, who a warning goes to, conditions.

No framework imports here: plain data in, plain data out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.contracts import CaseStatus as S

LOCAL = ZoneInfo("Asia/Shanghai")

TIERS = ("grid", "town", "county")
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
SETTLED = frozenset({S.agreed, S.follow_up, S.closed})
ENDED = frozenset({S.agreed, S.follow_up, S.closed, S.transferred, S.merged})
SIGN_FOR_PENDING = frozenset({S.triaged, S.assigned})
MEDIATION_PENDING = frozenset(
    {S.triaged, S.assigned, S.accepted, S.mediating, S.failed, S.escalated, S.reopened}
)
AREA_LEVELS = ("county", "town", "village", "grid")  # the dash-separated parts of a grid code


@dataclass(frozen=True)
class Thresholds:
    """The configurable conditions of §8, with its defaults."""

    repeat_party_cases: int = 3
    repeat_party_days: int = 90
    after_agreement_days: int = 30
    rising_min_cases: int = 5
    rising_factor: float = 2.0
    rising_days: int = 7
    rising_baseline_weeks: int = 8
    group_open_labour: int = 3
    group_days: int = 30
    group_parties: int = 10
    soon_due_sign_for_fraction: float = 0.25
    soon_due_mediation_days: float = 3.0


def local_day(at: datetime) -> date:
    """The calendar day in Asia/Shanghai of an instant."""
    return at.astimezone(LOCAL).date()


DIGIT_WIDTHS = (6, 9, 12)  # 统计用区划代码 without dashes: county 6, town 9, village 12 digits


def area_levels(grid_code: str | None) -> dict[str, str]:
    """{level: area code} for each level a grid code reaches (county, town, village, grid).

    Dashed codes (522731-103-007-01) split at the dashes; plain digit codes (522731001001) at
    the widths of the statistical area code, anything past the village being the grid.
    """
    if not grid_code:
        return {}
    if "-" not in grid_code and grid_code.isdigit() and len(grid_code) >= DIGIT_WIDTHS[0]:
        cuts = [w for w in DIGIT_WIDTHS if w <= len(grid_code)]
        if len(grid_code) > cuts[-1]:
            cuts.append(len(grid_code))
        return {level: grid_code[:w] for level, w in zip(AREA_LEVELS, cuts, strict=False)}
    parts = grid_code.split("-")
    return {level: "-".join(parts[: i + 1]) for i, level in enumerate(AREA_LEVELS[: len(parts)])}


def area_at(grid_code: str | None, level: str) -> str | None:
    """The area of a grid code at one level (None when the code does not reach it)."""
    return area_levels(grid_code).get(level)


def tier_above(tier: str | None) -> str | None:
    """The coordinating tier of a case: the tier above its own, the county for county cases."""
    if tier not in TIERS:
        return None
    return TIERS[min(TIERS.index(tier) + 1, len(TIERS) - 1)]


def rising_tier(level: str) -> str:
    """A rising area goes to the coordinator above it: village → its town, town → county."""
    return "town" if level == "village" else "county"


def short_hash(value: str) -> str:
    """A short, stable key for a value that must not travel in clear (an employer's name)."""
    return hashlib.sha256(value.encode()).hexdigest()[:24]


# ---------------------------------------------------------------------------------------------
# Conditions


@dataclass(frozen=True)
class Rising:
    """An area's count in the last window against its weekly mean before it."""

    recent: int
    baseline_weekly_mean: float
    holds: bool


def rising(recent: int, baseline_total: int, t: Thresholds) -> Rising:
    """≥ min cases in the window and ≥ factor × the weekly mean of the baseline weeks."""
    mean = baseline_total / t.rising_baseline_weeks
    holds = recent >= t.rising_min_cases and recent >= t.rising_factor * mean
    return Rising(recent, round(mean, 2), holds)


def rising_windows(day: date, t: Thresholds) -> tuple[date, date, date]:
    """(first day of the recent window, first day of the baseline, last day of the baseline)."""
    recent_from = day - timedelta(days=t.rising_days - 1)
    baseline_to = recent_from - timedelta(days=1)
    baseline_from = recent_from - timedelta(weeks=t.rising_baseline_weeks)
    return recent_from, baseline_from, baseline_to


def escalation_facts(
    before: Mapping[str, Any] | None, after: Mapping[str, Any], action: str
) -> dict[str, Any] | None:
    """Why a case escalates with this entry (severity rose, reopened, returned twice), or None."""
    if before is None:
        return None
    old, new = before.get("severity"), after.get("severity")
    if old in SEVERITY_RANK and new in SEVERITY_RANK and SEVERITY_RANK[new] > SEVERITY_RANK[old]:
        return {"reason": "severity_rose", "from_severity": old, "to_severity": new, "by": action}
    if after.get("status") == S.reopened and before.get("status") != S.reopened:
        return {"reason": "reopened", "reopen_count": after.get("reopen_count")}
    if after.get("return_count", 0) >= 2 > before.get("return_count", 0):
        return {"reason": "returned_twice", "return_count": after.get("return_count")}
    return None


@dataclass(frozen=True)
class DueSoon:
    """A deadline close to passing."""

    deadline: str  # sign_for | mediation
    due_at: datetime
    remaining_s: float


def soon_due(
    status: str,
    sign_for_from: datetime | None,
    sign_for_due: datetime | None,
    mediation_due: datetime | None,
    now: datetime,
    t: Thresholds,
) -> list[DueSoon]:
    """The deadlines of a case that are not yet missed but have little time left at `now`.

    Sign-for: less than a quarter of its window (from routing to the due time). Mediation:
    less than three days (an extension moves the due time, so the warning follows it).
    """
    out: list[DueSoon] = []
    if status in SIGN_FOR_PENDING and sign_for_due is not None and sign_for_from is not None:
        window = (sign_for_due - sign_for_from).total_seconds()
        left = (sign_for_due - now).total_seconds()
        if 0 < left < window * t.soon_due_sign_for_fraction:
            out.append(DueSoon("sign_for", sign_for_due, left))
    if status in MEDIATION_PENDING and mediation_due is not None:
        left = (mediation_due - now).total_seconds()
        if 0 < left < t.soon_due_mediation_days * 86400:
            out.append(DueSoon("mediation", mediation_due, left))
    return out


def employers(parties: Sequence[Mapping[str, Any]]) -> list[str]:
    """The organisations a labour case is against: respondents first, else any organisation."""
    orgs = [p for p in parties if p.get("kind") == "organisation" and p.get("display")]
    respondents = [p for p in orgs if p.get("role") == "respondent"]
    return sorted({str(p["display"]).strip() for p in (respondents or orgs)})


def is_open(status: str | None) -> bool:
    """Neither settled nor ended: a case a warning can still be about."""
    return status not in ENDED
