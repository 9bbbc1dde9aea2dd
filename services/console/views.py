"""Pure shaping of API answers into what the screens show: no HTTP, no framework."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.console.labels import SEVERITY_RANK, label

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


@dataclass
class Trend:
    """Cases received per week (Monday) and, of those, how many are settled now; oldest first."""

    weeks: list[str] = field(default_factory=list)
    received: list[int] = field(default_factory=list)
    settled: list[int] = field(default_factory=list)


def trend_of_series(items: list[dict[str, Any]]) -> Trend:
    """The weekly trend from followup's `/v1/stats/series?bucket=week` items (one group)."""
    t = Trend()
    for row in items:
        bucket = str(row.get("bucket") or "")
        t.weeks.append(bucket[5:] if len(bucket) == 10 else bucket)
        t.received.append(int(row.get("received") or 0))
        t.settled.append(int(row.get("settled") or 0))
    return t


DIGIT_WIDTHS = (6, 9, 12)  # county, town, village of a plain 统计用区划代码 grid code
LEVELS = ("county", "town", "village", "grid")


def area_levels(grid_code: str | None) -> dict[str, str]:
    """{level: code} of a grid code, cut as followup cuts it (dashes, else 6/9/12 digits)."""
    if not grid_code:
        return {}
    if "-" not in grid_code and grid_code.isdigit() and len(grid_code) >= DIGIT_WIDTHS[0]:
        cuts = [w for w in DIGIT_WIDTHS if w <= len(grid_code)]
        if len(grid_code) > cuts[-1]:
            cuts.append(len(grid_code))
        return {lv: grid_code[:w] for lv, w in zip(LEVELS, cuts, strict=False)}
    parts = grid_code.split("-")
    return {lv: "-".join(parts[: i + 1]) for i, lv in enumerate(LEVELS[: len(parts)])}


def parent_area(code: str) -> str:
    """The area one level up (a village's town); the code itself at the top."""
    levels = list(area_levels(code).values())
    return levels[-2] if len(levels) >= 2 else code


@dataclass
class MapArea:
    """An area drawn on the map: a box around its points, or a tile in the 未定位 strip."""

    code: str
    x: float
    y: float
    w: float
    h: float
    received: int = 0
    backlog: int = 0
    overdue: int = 0
    warnings: int = 0
    located: bool = True


@dataclass
class MapPoint:
    """One case at its coarse place (~100 m)."""

    case_id: str
    x: float
    y: float
    severity: str
    status: str
    dispute_type: str


@dataclass
class AreaMap:
    """What the SVG draws: towns (dashed boxes), areas (boxes), points; no tiles."""

    width: int
    height: int
    towns: list[MapArea] = field(default_factory=list)
    areas: list[MapArea] = field(default_factory=list)
    points: list[MapPoint] = field(default_factory=list)
    strip_y: float | None = None


def _box(
    xs: list[float], ys: list[float], pad: float, least: float = 0
) -> tuple[float, float, float, float]:
    """The box around some points, `pad` wide on each side and at least `least` across."""
    w = max(max(xs) - min(xs) + 2 * pad, least)
    h = max(max(ys) - min(ys) + 2 * pad, least)
    return (max(xs) + min(xs) - w) / 2, (max(ys) + min(ys) - h) / 2, w, h


def area_map(
    areas: list[dict[str, Any]],
    points: list[dict[str, Any]],
    level: str = "village",
    width: int = 640,
    height: int = 400,
) -> AreaMap:
    """Areas of `/v1/areas/summary` and points of `/v1/places`, projected without map tiles.

    Points go where their coarse latitude/longitude puts them (equirectangular, north up); an
    area is the box around its points, its town the box around its areas; areas with no point
    (no coordinates were reported) are tiles in a strip along the bottom.
    """
    out = AreaMap(width, height)
    placed = [p for p in points if isinstance(p.get("lat"), int | float) and p.get("lon")]
    strip_h = 56.0
    unplaced = [a for a in areas if not any(_in(p, a["area"], level) for p in placed)]
    top_h = height - (strip_h + 8 if unplaced else 0)
    if placed:
        lats = [float(p["lat"]) for p in placed]
        lons = [float(p["lon"]) for p in placed]
        mid = math.radians((max(lats) + min(lats)) / 2)
        span_x = max((max(lons) - min(lons)) * math.cos(mid), 0.005)
        span_y = max(max(lats) - min(lats), 0.005)
        margin = 40.0
        scale = min((width - 2 * margin) / span_x, (top_h - 2 * margin) / span_y)
        cx, cy = (max(lons) + min(lons)) / 2, (max(lats) + min(lats)) / 2
        for p in placed:
            x = width / 2 + (float(p["lon"]) - cx) * math.cos(mid) * scale
            y = top_h / 2 - (float(p["lat"]) - cy) * scale
            out.points.append(
                MapPoint(
                    str(p.get("case_id")),
                    round(x, 1),
                    round(y, 1),
                    str(p.get("severity") or "unknown"),
                    str(p.get("status") or ""),
                    str(p.get("dispute_type") or ""),
                )
            )
    by_area: dict[str, list[MapPoint]] = defaultdict(list)
    for p, mp in zip(placed, out.points, strict=True):
        code = area_levels(p.get("grid_code")).get(level) or "unknown"
        by_area[code].append(mp)
    summary = {a["area"]: a for a in areas}
    for code in sorted(set(by_area) | set(summary)):
        a = summary.get(code, {})
        pts = by_area.get(code)
        if not pts:
            continue
        x, y, w, h = _box([p.x for p in pts], [p.y for p in pts], 16, least=64)
        out.areas.append(
            MapArea(
                code,
                round(x, 1),
                round(y, 1),
                round(w, 1),
                round(h, 1),
                int(a.get("received") or len(pts)),
                int(a.get("backlog") or 0),
                int(a.get("overdue") or 0),
                int(a.get("open_warnings") or 0),
            )
        )
    towns: dict[str, list[MapArea]] = defaultdict(list)
    for ma in out.areas:
        towns[parent_area(ma.code) if level != "town" else ma.code].append(ma)
    if level != "town":
        for code, members in sorted(towns.items()):
            xs = [m.x for m in members] + [m.x + m.w for m in members]
            ys = [m.y for m in members] + [m.y + m.h for m in members]
            x, y, w, h = _box(xs, ys, 8)
            out.towns.append(
                MapArea(code, round(x, 1), round(y - 8, 1), round(w, 1), round(h + 8, 1))
            )
    if unplaced:
        out.strip_y = top_h + 8
        n = len(unplaced[:8])
        tile = (width - 8 * (n + 1)) / n
        for i, a in enumerate(unplaced[:8]):
            out.areas.append(
                MapArea(
                    a["area"],
                    round(8 + i * (tile + 8), 1),
                    out.strip_y + 4,
                    round(tile, 1),
                    strip_h - 8,
                    int(a.get("received") or 0),
                    int(a.get("backlog") or 0),
                    int(a.get("overdue") or 0),
                    int(a.get("open_warnings") or 0),
                    located=False,
                )
            )
    return out


def _in(point: dict[str, Any], code: str, level: str) -> bool:
    return area_levels(point.get("grid_code")).get(level) == code


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


def warning_summary(w: dict[str, Any], now: datetime | None = None) -> str:
    """A warning's facts in one Chinese sentence (the facts never hold a phone or an ID).

    A soon-due warning tells the time left until its due time at `now` (the hours in its
    facts are those left when it was raised: the scan does not rewrite a standing warning)."""
    f = w.get("facts") or {}
    kind = w.get("kind")
    if kind == "repeat_party":
        return (
            f"同一当事人 {f.get('window_days', '—')} 天内"
            f"涉及 {f.get('cases_in_window', '—')} 件纠纷（预警阈值 {f.get('threshold', '—')} 件）"
        )
    if kind == "repeat_after_agreement":
        return (
            f"案件达成协议后 {f.get('window_days', '—')} 天内，同一当事人再次发生纠纷"
            f"（协议于 {str(f.get('settled_at') or '')[:10] or '—'}）"
        )
    if kind == "rising_area":
        head = (
            f"区域 {f.get('area', w.get('area_code') or '—')} 近 {f.get('window_days', '—')} 天"
            f"受理 {f.get('recent_cases', '—')} 件"
        )
        if not f.get("baseline_weekly_mean"):
            return head + "，此前数周没有受理"
        return f"{head}，为此前周均 {f['baseline_weekly_mean']} 件的 {f.get('factor', '—')} 倍以上"
    if kind == "group_risk":
        if f.get("basis") == "employer":
            return (
                f"{f.get('employer', '同一单位')} {f.get('window_days', '—')} 天内"
                f"有 {f.get('open_labour_cases', '—')} 件未结劳动争议"
            )
        return f"一案涉及 {f.get('parties', '—')} 名当事人"
    if kind == "escalating":
        reason = f.get("reason")
        if reason == "severity_rose":
            return (
                f"风险等级由{label('severity', f.get('from_severity'))}"
                f"升至{label('severity', f.get('to_severity'))}"
            )
        if reason == "reopened":
            return "协议未履行，案件重启调解"
        if reason == "returned_twice":
            return f"已被退单 {f.get('return_count', 2)} 次"
        return "风险升级"
    if kind == "soon_due":
        which = "签收" if f.get("deadline") == "sign_for" else "调解"
        due = parse_time(f.get("due_at"))
        hours = f.get("hours_left", "—")
        if due is not None:
            hours = max(0.0, round((due - (now or datetime.now(UTC))).total_seconds() / 3600, 1))
        return f"{which}期限将至，剩余约 {hours} 小时"
    return str(kind or "")
