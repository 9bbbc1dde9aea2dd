"""一屏统览: counts, weekly trend, headline rates, areas and map, 督办, the triage review queue,
warnings to acknowledge, and the period's 报表 as XLSX; plus the warnings list."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.console.client import ApiResult
from services.console.labels import DISPUTE_TYPE, SEVERITY, TIER, WARNING_KIND
from services.console.views import area_map, period_bounds, trend_of_series, warning_summary
from services.console.web import (
    ApiDep,
    Csrf,
    CurrentUser,
    SettingsDep,
    flash_error,
    flash_error_query,
    render,
    settings_of,
)

router = APIRouter()

PERIODS = {7: "近7天", 30: "近30天", 90: "近90天", 365: "近一年"}
Days = Annotated[int, Query(ge=1, le=1830)]
Level = Literal["town", "village"]
OVERVIEW_WARNINGS = 20  # open warnings on the overview; the rest on /warnings
MAP_POINTS = 2000
WARNING_STATUS = {"open": "待研判", "acknowledged": "已研判", "cleared": "已解除"}
# what a form's redirect may say (codes, so that a link cannot put words in the console's mouth)
FLASH = {
    "acked": "预警已研判",
    "confirmed": "研判已确认",
    "corrected": "研判已更正",
    "rerouted": "研判已更正，案件已重新分派",
}
EXPORT_BUCKETS = {"week": "按周", "month": "按月", "day": "按日"}
EXPORT_GROUPS = {
    "": "不分组",
    "dispute_type": "按纠纷类型",
    "channel": "按调解渠道",
    "tier": "按层级",
    "source": "按来源",
    "area": "按区域（乡镇）",
    "organisation": "按承办组织",
}


def period_days(days: int, tz: str) -> tuple[datetime, date, date]:
    """The overview's `since` (for /v1/stats) and the same period as local dates (for series,
    areas and places, which count cases by the day they were received)."""
    since, until = period_bounds(days, datetime.now(UTC), tz)
    zone = ZoneInfo(tz)
    return since, since.astimezone(zone).date(), until.astimezone(zone).date()


def _body(r: ApiResult) -> dict[str, Any]:
    return r.body if r.ok and isinstance(r.body, dict) else {}


def _warning_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**w, "summary": warning_summary(w)} for w in items]


@router.get("/overview")
async def overview(
    request: Request,
    user: CurrentUser,
    api: ApiDep,
    settings: SettingsDep,
    days: Days = 30,
    level: Level = "village",
) -> Response:
    """The coordinator's one screen."""
    since, first, last = period_days(days, settings.timezone)
    t = user.token
    period = {"from": first.isoformat(), "to": last.isoformat()}
    reviewer = user.role in ("coordinator", "admin")
    calls = [
        api.get("followup", "/v1/stats", t, params={"since": since.isoformat()}),
        api.get("followup", "/v1/stats/series", t, params={**period, "bucket": "week"}),
        api.get("followup", "/v1/areas/summary", t, params={**period, "level": level}),
        api.get("followup", "/v1/places", t, params={**period, "limit": MAP_POINTS}),
        api.get("mediation", "/v1/supervisions", t, params={"limit": 50}),
        api.get(
            "followup", "/v1/warnings", t, params={"status": "open", "limit": OVERVIEW_WARNINGS}
        ),
    ]
    if reviewer:
        calls.append(api.get("triage", "/v1/triage/review", t))
    stats, series, areas, places, sup, warnings, *rest = await asyncio.gather(*calls)
    review = rest[0] if rest else None
    area_items = _body(areas).get("items", [])
    point_items = _body(places).get("items", [])
    w = _body(warnings)
    return render(
        request,
        "overview.html",
        {
            "days": days,
            "level": level,
            "periods": PERIODS,
            "since": since,
            "period": period,
            "stats": stats.body if stats.ok else None,
            "stats_etag": stats.etag,
            "error": None if stats.ok else stats.reason(),
            "supervisions": _body(sup).get("items", []),
            "review": _body(review).get("reviews") if review and review.ok else None,
            "review_refused": review.reason() if review and not review.ok else None,
            "warnings": _warning_rows(w.get("items", [])),
            "more_warnings": bool(w.get("has_more")),
            "warnings_error": None if warnings.ok else warnings.reason(),
            "trend": trend_of_series(_body(series).get("items", [])),
            "areas": area_items,
            "map": area_map(area_items, point_items, level),
            "points_shown": len(point_items),
            "flash": FLASH.get(request.query_params.get("flash", "")),
            "flash_error": flash_error(request),
            "buckets": EXPORT_BUCKETS,
            "groups": EXPORT_GROUPS,
            "types": DISPUTE_TYPE,
            "severities": SEVERITY,
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
    since, _, _ = period_days(days, settings.timezone)
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


@router.get("/overview/export.xlsx")
async def export_xlsx(
    user: CurrentUser,
    api: ApiDep,
    settings: SettingsDep,
    days: Days = 30,
    bucket: Literal["week", "month", "day"] = "week",
    group_by: Literal["", "dispute_type", "channel", "tier", "source", "area", "organisation"] = "",
) -> Response:
    """The period's 报表: followup's series export (`/v1/stats/series?format=xlsx`), as is."""
    _, first, last = period_days(days, settings.timezone)
    r = await api.get(
        "followup",
        "/v1/stats/series",
        user.token,
        params={
            "from": first.isoformat(),
            "to": last.isoformat(),
            "bucket": bucket,
            "group_by": group_by,
            "format": "xlsx",
        },
    )
    if not r.ok:
        return Response(r.reason(), status_code=r.status, media_type="text/plain; charset=utf-8")
    name = f"fengqiao-{first.isoformat()}-{last.isoformat()}-{bucket}"
    name += f"-{group_by}.xlsx" if group_by else ".xlsx"
    return Response(
        r.content,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )


# --- warnings ----------------------------------------------------------------------------------


@router.get("/warnings")
async def warnings_page(
    request: Request,
    user: CurrentUser,
    api: ApiDep,
    status: Annotated[str, Query(max_length=20)] = "open",
    kind: Annotated[str, Query(max_length=40)] = "",
    tier: Annotated[str, Query(max_length=10)] = "",
    area: Annotated[str, Query(max_length=64)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """风险预警: followup's warnings with its filters and cursor paging."""
    filters = {"status": status, "kind": kind, "tier": tier, "area": area.strip()}
    r = await api.get(
        "followup", "/v1/warnings", user.token, params={**filters, "cursor": cursor, "limit": 50}
    )
    body = _body(r)
    keep = {k: v for k, v in filters.items() if v}
    nxt = body.get("next_cursor") if body.get("has_more") else None
    return render(
        request,
        "warnings.html",
        {
            "items": _warning_rows(body.get("items", [])),
            "error": None if r.ok else r.reason(),
            "filters": filters,
            "kinds": WARNING_KIND,
            "statuses": WARNING_STATUS,
            "tiers": TIER,
            "next_url": "/warnings?" + urlencode({**keep, "cursor": nxt}) if nxt else None,
            "first_url": "/warnings?" + urlencode(keep) if cursor else None,
            "back": "/warnings?" + urlencode(keep),
            "flash": FLASH.get(request.query_params.get("flash", "")),
            "flash_error": flash_error(request),
        },
        user=user,
    )


def _back(request: Request, fallback: str = "/overview") -> str:
    """Where a form returns to: a local path only (never another site)."""
    back = request.query_params.get("back", "")
    return back if back.startswith("/") and not back.startswith("//") else fallback


def _redirect(request: Request, back: str, flash: str = "", error: str = "") -> RedirectResponse:
    """Back to the page, with a code of FLASH or a signed alert (web.flash_error_query)."""
    query = {"flash": flash} if flash else flash_error_query(settings_of(request), error)
    sep = "&" if "?" in back else "?"
    return RedirectResponse(back + sep + urlencode(query), 303)


@router.post("/warnings/{warning_id}/ack")
async def acknowledge(
    request: Request, warning_id: str, user: CurrentUser, api: ApiDep, _csrf: Csrf
) -> Response:
    """研判: acknowledge a warning with the coordinator's note (a trail entry on each case)."""
    form = await request.form()
    note = str(form.get("note") or "").strip()
    back = _back(request)
    if not note:
        return _redirect(request, back, error="请填写研判意见")
    r = await api.post(
        "followup", f"/v1/warnings/{warning_id}/acknowledge", user.token, json={"note": note}
    )
    if r.ok:
        return _redirect(request, back, flash="acked")
    return _redirect(request, back, error=f"研判未保存（{r.status}）：{r.reason()}")


# --- the triage review queue -------------------------------------------------------------------


@router.post("/review/{case_id}")
async def review(
    request: Request, case_id: str, user: CurrentUser, api: ApiDep, _csrf: Csrf
) -> Response:
    """确认 or 更正 a doubtful triage decision (triage re-routes the case after a correction)."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    back = _back(request)
    if form.get("verdict") == "confirm":
        body: dict[str, Any] = {"confirm": True, "note": form.get("note", "").strip()}
    else:
        body = {
            "dispute_type": form.get("dispute_type") or None,
            "severity": form.get("severity") or None,
            "note": form.get("note", "").strip(),
        }
    r = await api.post("triage", f"/v1/triage/cases/{case_id}/review", user.token, json=body)
    if r.ok and isinstance(r.body, dict):
        done = str(r.body.get("status"))
        return _redirect(request, back, flash="rerouted" if r.body.get("rerouted") else done)
    return _redirect(request, back, error=f"复核未保存（{r.status}）：{r.reason()}")
