"""Reporting routes: series by received date (JSON, CSV, XLSX) and per-area summaries."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from services.followup.api import Code, Severity, Source, Tier, filters_of, invalid, tagged
from services.followup.domain import scope_of
from services.followup.reporting import repository as rrepo
from services.followup.reporting.domain import (
    GROUP_BY,
    TIME_ZONE,
    Totals,
    area_group,
    scope_public,
    series,
)
from services.followup.reporting.export import to_csv, to_xlsx
from services.followup.schemas import AreasSummary, Series
from services.followup.warnings import repository as wrepo
from services.followup.warnings.domain import LOCAL
from shared.contracts import WarningStatus
from shared.web import CurrentStaff

router = APIRouter(prefix="/v1", tags=["reporting"])

MAX_DAYS = 1830  # five years per request
Level = Literal["county", "town", "village", "grid"]
LEVEL_NUMBER = {"county": 1, "town": 2, "village": 3, "grid": 4}
GroupBy = Literal["dispute_type", "channel", "tier", "source", "area", "organisation"]


def scope_words(s: dict[str, Any]) -> str:
    """One line for the 说明 sheet."""
    if s["all_cases"]:
        return "全部案件"
    parts = [f"{k}={v}" for k, v in s.items() if k not in ("role", "all_cases") and v]
    return f"{s['role']}: " + ", ".join(str(p) for p in parts)


FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)


def period_of(request: Request, first: date | None, last: date | None) -> tuple[date, date]:
    """The period asked for; by default the 30 days up to today in Asia/Shanghai."""
    today = request.app.state.clock.now().astimezone(LOCAL).date()
    for name, day in (("from", first), ("to", last)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            # the calendar arithmetic of a period (its default start, its weeks and months)
            # must stay inside the dates Python has
            raise invalid(name, f"a date from {FIRST_DAY} to {LAST_DAY}")
    last = last or today
    first = first or last - timedelta(days=29)
    if first > last:
        raise invalid("from", "the period starts after it ends")
    if (last - first).days >= MAX_DAYS:
        raise invalid("from", f"a period is at most {MAX_DAYS} days")
    return first, last


@router.get(
    "/stats/series",
    response_model=Series,
    responses={
        200: {
            "content": {
                "text/csv": {},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
            },
            "description": "JSON, or with ?format=csv|xlsx the same rows as a file",
        }
    },
)
async def stats_series(
    request: Request,
    staff: CurrentStaff,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    bucket: Literal["day", "week", "month"] = "day",
    group_by: GroupBy | None = None,
    level: Level = "town",
    channel: Code | None = None,
    tier: Tier | None = None,
    severity: Severity | None = None,
    dispute_type: Code | None = None,
    source: Source | None = None,
    format: Literal["json", "csv", "xlsx"] = "json",
) -> Response:
    """The measures of /v1/stats per bucket (and group) of the day cases were received."""
    first, last = period_of(request, first, last)
    scope = scope_of(staff)
    filters = filters_of(None, channel, tier, severity, dispute_type, source, None, None)
    column = GROUP_BY[group_by] if group_by else None
    async with request.app.state.runtime.sessions() as session:
        rows = await rrepo.counted(
            session,
            filters,
            scope,
            first,
            last,
            column,
            level=LEVEL_NUMBER[level],
            months=bucket == "month",
            bucket=bucket,
        )
        if rows is None:  # a mediator's scope, or two filters at once: from their cases
            rows = await rrepo.counted_from_cases(session, filters, scope, first, last, column)
    items = series(rows, first, last, bucket, group_by, level)
    who = scope_public(staff)
    period = {"from": first.isoformat(), "to": last.isoformat()}
    if format == "json":
        return tagged(
            request,
            {
                "period": period,
                "time_zone": TIME_ZONE,
                "bucket": bucket,
                "group_by": group_by,
                "level": level if group_by == "area" else None,
                "scope": who,
                "items": items,
            },
        )
    name = f"fengqiao-{first.isoformat()}-{last.isoformat()}-{bucket}"
    headers = {
        "X-Report-Period": f"{first.isoformat()}/{last.isoformat()}",
        "X-Report-Time-Zone": TIME_ZONE,
        "Cache-Control": "private, no-store",
    }
    if format == "csv":
        headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return Response(to_csv(items), media_type="text/csv; charset=utf-8", headers=headers)
    about = {
        "period": f"{first.isoformat()} 至 {last.isoformat()}",
        "time_zone": TIME_ZONE,
        "bucket": bucket,
        "group_by": group_by or "",
        "scope": scope_words(who),
        "generated_at": datetime.now(LOCAL).isoformat(timespec="seconds"),
    }
    headers["Content-Disposition"] = f'attachment; filename="{name}.xlsx"'
    return Response(
        to_xlsx(items, about),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers=headers,
    )


@router.get("/areas/summary", response_model=AreasSummary)
async def areas_summary(
    request: Request,
    staff: CurrentStaff,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    level: Level = "town",
    area: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9A-Za-z\-_.]+$")] = None,
) -> Response:
    """Per area (at a grid-code level): the period's measures and the warnings open now."""
    first, last = period_of(request, first, last)
    scope = scope_of(staff)
    filters = filters_of(None, None, None, None, None, None, None, None)
    async with request.app.state.runtime.sessions() as session:
        rows = await rrepo.counted(
            session,
            filters,
            scope,
            first,
            last,
            "area",
            level=LEVEL_NUMBER[level],
            months=True,
            bucket=None,
        )
        if rows is None:
            rows = await rrepo.counted_from_cases(session, filters, scope, first, last, "area")
        open_warnings = [
            w
            for status in (WarningStatus.open, WarningStatus.acknowledged)
            for w in await wrepo.list_warnings(
                session, wrepo.warning_conditions(scope, None, area, None, status), None, 10_000
            )
        ]
    totals: dict[str, Totals] = {}
    # a case or warning with no location: county level only, never inside an asked area
    # (shared.scope.case_area; reporting.domain.area_group)
    for _day, grid, m in rows:
        code = area_group(grid, level)
        if code is None or (area and (not grid or not code.startswith(area))):
            continue
        totals.setdefault(code, Totals()).add(m)
    warned: dict[str, dict[str, int]] = {}
    for w in open_warnings:
        # a warning about an area wider than the level stays with that area
        code = area_group(w.area_code, level)
        if code is None:
            continue
        if code == "unknown":
            code = w.area_code or code
        warned.setdefault(code, {}).setdefault(w.kind, 0)
        warned[code][w.kind] += 1
    items = []
    for code in sorted(set(totals) | set(warned)):
        measures = totals.get(code, Totals()).measures()
        kinds = warned.get(code, {})
        items.append(
            {
                "area": code,
                **measures,
                "open_warnings": sum(kinds.values()),
                "warnings_by_kind": kinds,
            }
        )
    return tagged(
        request,
        {
            "period": {"from": first.isoformat(), "to": last.isoformat()},
            "time_zone": TIME_ZONE,
            "level": level,
            "scope": scope_public(staff),
            "items": items,
        },
    )
