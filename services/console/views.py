"""Pure shaping of API answers into what the screens show: no HTTP, no framework."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.console.labels import SEVERITY_RANK

OPEN_END = {"closed", "transferred", "merged"}
SETTLED = {"agreed", "follow_up", "closed"}
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from an API answer (UTC when it carries no offset)."""
    if not value or not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def local(value: Any, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time as people read it in the county (Beijing time)."""
    t = parse_time(value)
    return t.astimezone(ZoneInfo(tz)).strftime(fmt) if t else "—"


def merge_case(mediation: dict[str, Any], ledger: dict[str, Any]) -> dict[str, Any]:
    """One case from mediation's view (report, contact, actions) and the ledger's (whole life).

    Each service's status is right as of its own last change: the newer one wins, so the page
    shows `accepted` at once after 签收 and `closed` once follow-up has closed the case.
    """
    case = {**ledger, **{k: v for k, v in mediation.items() if v is not None}}
    m_at, l_at = parse_time(mediation.get("updated_at")), parse_time(ledger.get("updated_at"))
    if ledger.get("status") and (m_at is None or (l_at is not None and l_at >= m_at)):
        case["status"] = ledger["status"]
    return case


def is_overdue(case: dict[str, Any]) -> bool:
    """A supervision was raised, or a deadline the case still runs against has passed."""
    return bool(
        case.get("overdue") or case.get("sign_for_overdue") or case.get("mediation_overdue")
    )


def next_due(case: dict[str, Any]) -> datetime:
    """The deadline the case runs against now: sign-for before 签收, mediation after."""
    status = case.get("status")
    key = "sign_for_due" if status in ("assigned", "triaged", "returned") else "mediation_due"
    return parse_time(case.get(key)) or parse_time(case.get("mediation_due")) or FAR_FUTURE


def urgency_key(case: dict[str, Any]) -> tuple[int, int, datetime, int, str]:
    """Most urgent first: open before finished, overdue first, then earliest due, then severity."""
    finished = case.get("status") in OPEN_END or case.get("status") in SETTLED
    return (
        1 if finished else 0,
        0 if is_overdue(case) else 1,
        next_due(case),
        SEVERITY_RANK.get(str(case.get("severity")), 9),
        str(case.get("case_id")),
    )


def by_urgency(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The work list in the order a mediator should work it."""
    return sorted(cases, key=urgency_key)


def count_by(cases: list[dict[str, Any]], key: str) -> dict[str, int]:
    """Counts of a field's values, largest first."""
    return dict(Counter(str(c.get(key) or "unknown") for c in cases).most_common())


def week_start(d: date) -> date:
    """Monday of the week."""
    return d - timedelta(days=d.weekday())


@dataclass
class Trend:
    """Cases received and settled per week (Monday), oldest first."""

    weeks: list[str] = field(default_factory=list)
    received: list[int] = field(default_factory=list)
    settled: list[int] = field(default_factory=list)


def weekly_trend(cases: list[dict[str, Any]], since: datetime, until: datetime, tz: str) -> Trend:
    """Received (by received_at, else created_at) and settled (agreed_at) per week in the period."""
    zone = ZoneInfo(tz)
    first = week_start(since.astimezone(zone).date())
    last = week_start(until.astimezone(zone).date())
    weeks: list[date] = []
    w = first
    while w <= last:
        weeks.append(w)
        w += timedelta(days=7)
    received: dict[date, int] = defaultdict(int)
    settled: dict[date, int] = defaultdict(int)
    for c in cases:
        r = parse_time(c.get("received_at")) or parse_time(c.get("created_at"))
        if r and since <= r <= until:
            received[week_start(r.astimezone(zone).date())] += 1
        a = parse_time(c.get("agreed_at"))
        if a and since <= a <= until:
            settled[week_start(a.astimezone(zone).date())] += 1
    return Trend(
        [w.strftime("%m-%d") for w in weeks],
        [received[w] for w in weeks],
        [settled[w] for w in weeks],
    )


def area_of(grid_code: str | None, level: int) -> str:
    """The area a grid code lies in: county (6 digits), town (9) or village (12)."""
    code = (grid_code or "").replace("-", "")
    return code[:level] if len(code) >= level else (code or "未定位")


@dataclass
class AreaRow:
    """One area of the area table and map."""

    code: str
    town: str
    total: int = 0
    open: int = 0
    overdue: int = 0
    settled: int = 0
    cases: list[str] = field(default_factory=list)


def area_table(cases: list[dict[str, Any]], level: int = 12) -> list[AreaRow]:
    """Cases grouped by grid-code prefix (village level by default), biggest first."""
    rows: dict[str, AreaRow] = {}
    for c in cases:
        code = area_of(c.get("grid_code"), level)
        row = rows.setdefault(code, AreaRow(code, area_of(c.get("grid_code"), 9)))
        row.total += 1
        row.open += c.get("status") not in OPEN_END
        row.overdue += is_overdue(c) and c.get("status") not in OPEN_END
        row.settled += c.get("status") in SETTLED
        row.cases.append(str(c.get("case_id")))
    return sorted(rows.values(), key=lambda r: (-r.total, r.code))


@dataclass
class MapArea:
    """A town drawn as a box, its villages as circles inside, its cases as points."""

    code: str
    x: float
    y: float
    w: float
    h: float
    villages: list[dict[str, Any]] = field(default_factory=list)


def _jitter(key: str, span: float) -> float:
    """A stable offset in [-span/2, span/2] from a key (the same case lands on the same spot)."""
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return (h / 0xFFFFFFFF - 0.5) * span


def schematic_map(rows: list[AreaRow], width: int = 640, height: int = 360) -> list[MapArea]:
    """A tile-free schematic: towns in a grid of boxes, villages as circles sized by cases.

    The ledger carries grid codes but no coordinates, so places are laid out by code order.
    """
    towns: dict[str, list[AreaRow]] = defaultdict(list)
    for r in rows:
        towns[r.town].append(r)
    codes = sorted(towns)
    if not codes:
        return []
    cols = min(4, len(codes))
    nrows = (len(codes) + cols - 1) // cols
    bw, bh = width / cols, height / nrows
    out: list[MapArea] = []
    for i, code in enumerate(codes):
        area = MapArea(code, (i % cols) * bw + 4, (i // cols) * bh + 4, bw - 8, bh - 8)
        villages = sorted(towns[code], key=lambda r: r.code)
        vcols = max(1, min(3, len(villages)))
        vrows = (len(villages) + vcols - 1) // vcols
        for j, v in enumerate(villages):
            cx = area.x + area.w * ((j % vcols) + 0.5) / vcols
            cy = area.y + 18 + (area.h - 18) * ((j // vcols) + 0.5) / vrows
            radius = min(area.w / vcols, (area.h - 18) / vrows, 150) / 2 - 4
            points = [
                {
                    "case_id": cid,
                    "x": round(cx + _jitter(cid + "x", radius * 1.2), 1),
                    "y": round(cy + _jitter(cid + "y", radius * 1.2), 1),
                }
                for cid in v.cases[:200]
            ]
            area.villages.append(
                {
                    "code": v.code,
                    "cx": round(cx, 1),
                    "cy": round(cy, 1),
                    "r": round(max(radius, 6), 1),
                    "total": v.total,
                    "overdue": v.overdue,
                    "points": points,
                }
            )
        out.append(area)
    return out


def period_bounds(days: int, now: datetime, tz: str) -> tuple[datetime, datetime]:
    """The period the overview covers: from local midnight `days - 1` days ago up to now.

    The start stays the same all day, so the stats URL (and its ETag) is stable while polling.
    """
    zone = ZoneInfo(tz)
    start = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return (start - timedelta(days=days - 1)).astimezone(UTC), now


def percent(rate: Any) -> str:
    """0.6667 → 66.7%; — when the API had nothing to divide."""
    if rate is None:
        return "—"
    return f"{float(rate) * 100:.1f}%"
