"""一屏统览: counts, weekly trend, headline rates, areas and map, 督办, review queue, warnings,
and the period's 报表 as XLSX."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.console.client import Api
from services.console.labels import ROLE
from services.console.report import build_workbook
from services.console.views import area_table, local, period_bounds, schematic_map, weekly_trend
from services.console.web import ApiDep, Csrf, CurrentUser, SettingsDep, User, render

router = APIRouter()

PERIODS = {7: "近7天", 30: "近30天", 90: "近90天", 365: "近一年"}
Days = Annotated[int, Query(ge=1, le=3660)]


async def period_cases(
    api: Api, user: User, since: datetime, pages: int
) -> tuple[list[dict[str, Any]], bool]:
    """The cases of the period in the caller's scope (ledger pages of 500, oldest change first),
    and whether that is all of them (at most `pages` pages are read)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(pages):
        r = await api.get(
            "followup",
            "/v1/cases",
            user.token,
            params={"since": since.isoformat(), "limit": 500, "order": "asc", "cursor": cursor},
        )
        if not r.ok:
            return items, False
        items.extend(r.body.get("items", []))
        cursor = r.body.get("next_cursor")
        if not r.body.get("has_more") or not cursor:
            return items, True
    return items, False


def _items_or_none(r: Any) -> list[dict[str, Any]] | None:
    """A list route's items; None when the route does not exist (yet) or refuses."""
    if r.status in (404, 405, 501) or not r.ok or not isinstance(r.body, dict):
        return None
    items = r.body.get("items", r.body.get("cases", []))
    return items if isinstance(items, list) else None


@router.get("/overview")
async def overview(
    request: Request, user: CurrentUser, api: ApiDep, settings: SettingsDep, days: Days = 30
) -> Response:
    """The coordinator's one screen."""
    since, until = period_bounds(days, datetime.now(UTC), settings.timezone)
    t = user.token
    stats, sup, review, warnings, (cases, complete) = await asyncio.gather(
        api.get("followup", "/v1/stats", t, params={"since": since.isoformat()}),
        api.get("mediation", "/v1/supervisions", t, params={"limit": 50}),
        api.get("triage", "/v1/triage/review", t),
        api.get("followup", "/v1/warnings", t, params={"status": "open"}),
        period_cases(api, user, since, settings.max_export_pages),
    )
    trend = weekly_trend(cases, since, until, settings.timezone)
    areas = area_table(cases)
    return render(
        request,
        "overview.html",
        {
            "days": days,
            "periods": PERIODS,
            "since": since,
            "stats": stats.body if stats.ok else None,
            "stats_etag": stats.etag,
            "error": None if stats.ok else stats.reason(),
            "supervisions": _items_or_none(sup) or [],
            "review": _items_or_none(review),
            "warnings": _items_or_none(warnings),
            "trend": trend,
            "areas": areas,
            "map": schematic_map(areas),
            "ack": request.query_params.get("ack"),
            "complete": complete,
            "case_count": len(cases),
        },
        user=user,
    )


@router.get("/overview/numbers")
async def overview_numbers(
    request: Request,
    user: CurrentUser,
    api: ApiDep,
    settings: SettingsDep,
    days: Days = 30,
    etag: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The headline numbers for htmx polling: 204 (nothing to swap) while /v1/stats is unchanged."""
    since, _ = period_bounds(days, datetime.now(UTC), settings.timezone)
    r = await api.get(
        "followup", "/v1/stats", user.token, params={"since": since.isoformat()}, etag=etag
    )
    if r.status == 304:
        return Response(status_code=204)
    return render(
        request,
        "_numbers.html",
        {
            "stats": r.body if r.ok else None,
            "stats_etag": r.etag,
            "days": days,
            "error": None if r.ok else r.reason(),
        },
        user=user,
    )


@router.post("/warnings/{warning_id}/ack")
async def acknowledge(
    request: Request, warning_id: str, user: CurrentUser, api: ApiDep, _csrf: Csrf
) -> Response:
    """Acknowledge a warning with a note (a trail entry on each case it names); followup decides."""
    form = await request.form()
    note = str(form.get("note") or "").strip() or "已阅，安排研判"
    r = await api.post(
        "followup", f"/v1/warnings/{warning_id}/acknowledge", user.token, json={"note": note}
    )
    if r.status in (404, 405):  # the route's other spelling
        r = await api.post(
            "followup", f"/v1/warnings/{warning_id}/ack", user.token, json={"note": note}
        )
    outcome = "ok" if r.ok else r.reason()
    days = request.query_params.get("days", "30")
    return RedirectResponse("/overview?" + urlencode({"days": days, "ack": outcome}), 303)


@router.get("/overview/export.xlsx")
async def export_xlsx(
    user: CurrentUser, api: ApiDep, settings: SettingsDep, days: Days = 30
) -> Response:
    """The period's 报表 built from /v1/stats and /v1/cases (followup has no export route)."""
    since, until = period_bounds(days, datetime.now(UTC), settings.timezone)
    stats, (cases, complete) = await asyncio.gather(
        api.get("followup", "/v1/stats", user.token, params={"since": since.isoformat()}),
        period_cases(api, user, since, settings.max_export_pages),
    )
    if not stats.ok:
        return Response(stats.reason(), status_code=stats.status, media_type="text/plain")
    tz = settings.timezone
    period = f"{local(since.isoformat(), tz)} 至 {local(until.isoformat(), tz)}"
    who = f"{user.principal.subject}（{ROLE.get(user.role, user.role)}）"
    data = build_workbook(
        stats.body,
        cases,
        weekly_trend(cases, since, until, tz),
        area_table(cases),
        period=period,
        tz=tz,
        who=who,
        complete=complete,
    )
    name = f"fengqiao-report-{local(until.isoformat(), tz, '%Y%m%d')}-{days}d.xlsx"
    return Response(
        data,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
