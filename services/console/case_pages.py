"""我的案件, 案件列表 (ledger filters, cursor paging, ETag polling) and 案件详情 with actions."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.console.client import Api, ApiResult
from services.console.labels import CHANNEL, DISPUTE_TYPE, SEVERITY, SOURCE, STATUS, TIER
from services.console.overview_pages import FLASH
from services.console.views import (
    by_urgency,
    count_by,
    is_overdue,
    merge_case,
    warning_summary,
)
from services.console.web import ApiDep, Csrf, CurrentUser, User, flash_error, render

router = APIRouter()

LIST_FILTERS = ("status", "channel", "tier", "severity", "dispute_type", "source", "overdue")
FILTER_CHOICES = {
    "status": STATUS,
    "channel": CHANNEL,
    "tier": TIER,
    "severity": SEVERITY,
    "dispute_type": DISPUTE_TYPE,
    "source": SOURCE,
    "overdue": {"true": "是", "false": "否"},
}
MY_ROWS = 100  # the most urgent cases shown on 我的案件; the counts cover the whole work list
# the mediator's forms, in the order the life cycle reaches them
FORM_ACTIONS = ("accept", "note", "agree", "extend", "return", "fail", "escalate", "transfer")
COORDINATOR_ACTIONS = ("assign", "reassign")


async def work_list(api: Api, user: User, pages: int = 5) -> tuple[list[dict[str, Any]], str]:
    """The caller's whole work list from mediation (a few pages of 200)."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(pages):
        r = await api.get(
            "mediation", "/v1/mediation/cases", user.token, params={"limit": 200, "after": after}
        )
        if not r.ok:
            return items, r.reason()
        items.extend(r.body.get("items", []))
        after = r.body.get("next_after")
        if not after:
            break
    return items, ""


@router.get("/my")
async def my_cases(request: Request, user: CurrentUser, api: ApiDep) -> Response:
    """我的案件: most urgent first, counts by status."""
    items, error = await work_list(api, user)
    items = by_urgency(items)
    return render(
        request,
        "my.html",
        {
            "items": items[:MY_ROWS],
            "total": len(items),
            "status_counts": count_by(items, "status"),
            "overdue": sum(1 for c in items if is_overdue(c)),
            "error": error,
            "done": DONE.get(request.query_params.get("done", "")),
        },
        user=user,
    )


def _list_params(request: Request) -> dict[str, str]:
    q = request.query_params
    params = {k: q[k] for k in LIST_FILTERS if q.get(k)}
    if q.get("since"):
        params["since"] = q["since"] + ("T00:00:00+08:00" if len(q["since"]) == 10 else "")
    params["order"] = q.get("order") or "desc"
    params["limit"] = q.get("limit") or "50"
    if q.get("cursor"):
        params["cursor"] = q["cursor"]
    return params


def _list_context(request: Request, r: ApiResult) -> dict[str, Any]:
    q = request.query_params
    filters = {k: q.get(k, "") for k in (*LIST_FILTERS, "since", "order")}
    keep = {k: v for k, v in filters.items() if v}
    body = r.body if r.ok and isinstance(r.body, dict) else {}
    next_cursor = body.get("next_cursor") if body.get("has_more") else None
    return {
        "items": body.get("items", []),
        "count": body.get("count", 0),
        "error": None if r.ok else r.reason(),
        "filters": filters,
        "choices": FILTER_CHOICES,
        "next_url": "/cases?" + urlencode({**keep, "cursor": next_cursor}) if next_cursor else None,
        "first_url": "/cases?" + urlencode(keep),
        "poll_url": (
            "/cases/rows?" + urlencode({**keep, "etag": r.etag or ""})
            if not q.get("cursor")
            else None
        ),
        "etag": r.etag,
    }


@router.get("/cases")
async def case_list(request: Request, user: CurrentUser, api: ApiDep) -> Response:
    """案件列表: the ledger with its filters and cursor paging."""
    r = await api.get("followup", "/v1/cases", user.token, params=_list_params(request))
    return render(request, "cases.html", _list_context(request, r), user=user)


@router.get("/cases/rows")
async def case_rows(
    request: Request,
    user: CurrentUser,
    api: ApiDep,
    etag: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The first page's rows for htmx polling: 204 (nothing to swap) while the ETag holds."""
    r = await api.get("followup", "/v1/cases", user.token, params=_list_params(request), etag=etag)
    if r.status == 304:
        return Response(status_code=204)
    return render(request, "_case_rows.html", _list_context(request, r), user=user)


async def case_context(api: Api, user: User, case_id: str) -> dict[str, Any] | None:
    """Everything the case page shows, from four services; None when the case is not theirs."""
    t = user.token
    med, ledger = await asyncio.gather(
        api.get("mediation", f"/v1/mediation/cases/{case_id}", t),
        api.get("followup", f"/v1/cases/{case_id}", t),
    )
    if not med.ok and not ledger.ok:
        return None
    # only now, with the case known to be within the caller's scope, ask the unscoped reads
    trail, verify, visits, decisions, warnings, place = await asyncio.gather(
        api.get("followup", f"/v1/cases/{case_id}/trail", t),
        api.get("followup", f"/v1/cases/{case_id}/trail/verify", t),
        api.get("followup", f"/v1/cases/{case_id}/visits", t),
        api.get("triage", f"/v1/triage/cases/{case_id}/decisions", t),
        # followup filters by case_id where it knows the filter; the console filters again
        api.get("followup", "/v1/warnings", t, params={"case_id": case_id, "limit": 500}),
        api.get("followup", f"/v1/cases/{case_id}/place", t),
    )
    m = med.body if med.ok else {}
    lg = ledger.body if ledger.ok else {}
    case = merge_case(m, lg)
    offered = m.get("allowed_actions") or []
    allowed = [a for a in FORM_ACTIONS if a in offered]
    if user.role in ("coordinator", "admin") and any(a in offered for a in COORDINATOR_ACTIONS):
        allowed.append("assign")
    status = case.get("status")
    can_visit = status == "follow_up" and user.role in ("mediator", "coordinator", "admin")
    warning_items = (
        [
            {**w, "summary": warning_summary(w)}
            for w in warnings.body.get("items", [])
            if case_id in (w.get("case_ids") or [])
        ]
        if warnings.ok and isinstance(warnings.body, dict)
        else []
    )
    return {
        "case": case,
        "in_mediation": med.ok,
        "trail": trail.body.get("entries", []) if trail.ok else m.get("trail", []),
        "trail_etag": trail.etag if trail.ok else None,
        "verify": verify.body if verify.ok else None,
        "visits": visits.body.get("visits", []) if visits.ok else [],
        "decisions": decisions.body.get("decisions", []) if decisions.ok else [],
        "warnings": warning_items,
        "warnings_available": warnings.ok,
        "place": place.body if place.ok and isinstance(place.body, dict) else None,
        "allowed": allowed,
        "can_visit": can_visit,
        "read_only": bool(m.get("read_only", True)),
    }


@router.get("/cases/{case_id}/trail")
async def trail_fragment(
    request: Request,
    case_id: str,
    user: CurrentUser,
    api: ApiDep,
    etag: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The timeline for htmx polling: 204 while the ledger's ETag for the trail holds."""
    r = await api.get("followup", f"/v1/cases/{case_id}/trail", user.token, etag=etag)
    if r.status == 304:
        return Response(status_code=204)
    if not r.ok:
        return Response(status_code=204)  # not in the ledger yet, or no longer theirs
    verify = await api.get("followup", f"/v1/cases/{case_id}/trail/verify", user.token)
    ctx = {
        "cid": case_id,
        "trail": r.body.get("entries", []),
        "trail_etag": r.etag,
        "verify": verify.body if verify.ok else None,
    }
    return render(request, "_trail.html", ctx, user=user)


@router.get("/cases/{case_id}")
async def case_page(request: Request, case_id: str, user: CurrentUser, api: ApiDep) -> Response:
    """案件详情."""
    ctx = await case_context(api, user, case_id)
    if ctx is None:
        return render(request, "not_found.html", {"case_id": case_id}, 404, user=user)
    q = request.query_params
    ctx |= {"flash": FLASH.get(q.get("flash", "")), "flash_error": flash_error(request)}
    flash = DONE.get(q.get("done", ""))
    return render(request, "case.html", {**ctx, "error": None, "done": flash}, user=user)


def _amount(value: str) -> int | None:
    value = value.strip().replace(",", "")
    return int(value) if value.isdigit() else None


def action_call(action: str, case_id: str, form: dict[str, str]) -> tuple[Any, str, Any] | None:
    """(service, path, body) of a form's action; None for an unknown action."""
    reason = form.get("reason", "").strip()
    mediation = {
        "accept": ("/accept", {}),
        "return": ("/return", {"reason": reason}),
        "note": ("/notes", {"text": form.get("text", "").strip()}),
        "fail": ("/failure", {"reason": reason}),
        "escalate": ("/escalate", {"reason": reason}),
        "extend": ("/extension", {"reason": reason}),
        "transfer": ("/transfer", {"target": form.get("target", ""), "reason": reason}),
    }
    if action in mediation:
        path, body = mediation[action]
        return "mediation", f"/v1/cases/{case_id}{path}", body
    if action == "assign":
        return (
            "mediation",
            f"/v1/cases/{case_id}/assign",
            {
                "organisation_id": form.get("organisation_id", "").strip(),
                "mediator_id": form.get("mediator_id", "").strip() or None,
                "reason": form.get("reason", "").strip() or "协调员指派",
            },
        )
    if action == "agree":
        due = form.get("performance_due", "").strip()
        return (
            "mediation",
            f"/v1/cases/{case_id}/agreement",
            {
                "terms": form.get("terms", "").strip(),
                "amount_yuan": _amount(form.get("amount_yuan", "")),
                # 18:00 Beijing, sent in UTC: mediation reads it back without an offset
                "performance_due": f"{due}T10:00:00Z" if due else None,
            },
        )
    if action == "visit":
        sat = form.get("satisfaction", "")
        return (
            "followup",
            f"/v1/cases/{case_id}/visits",
            {
                "method": form.get("method", "phone"),
                "honoured": form.get("honoured") == "yes",
                "satisfaction": int(sat) if sat.isdigit() else None,
                "note": form.get("note", "").strip() or None,
            },
        )
    return None


DONE = {
    "accept": "已签收",
    "note": "已记录调解进展",
    "agree": "已登记调解协议",
    "return": "已退单",
    "fail": "已登记调解不成",
    "escalate": "已上交上级",
    "transfer": "已转诉讼/仲裁",
    "visit": "已登记回访",
    "assign": "已指派",
    "extend": "已延期",
}


@router.post("/cases/{case_id}/act/{action}")
async def act(
    request: Request, case_id: str, action: str, user: CurrentUser, api: ApiDep, _csrf: Csrf
) -> Response:
    """One life-cycle action from a form; a refusal shows the service's own reason."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    call = action_call(action, case_id, form)
    if call is None:
        return render(request, "not_found.html", {"case_id": case_id}, 404, user=user)
    service, path, body = call
    r = await api.post(service, path, user.token, json=body)
    if r.ok:
        if isinstance(r.body, dict) and r.body.get("visible") is False:
            return RedirectResponse("/my?" + urlencode({"done": action}), 303)
        return RedirectResponse(f"/cases/{case_id}?" + urlencode({"done": action}), 303)
    ctx = await case_context(api, user, case_id)
    if ctx is None:
        return render(request, "not_found.html", {"case_id": case_id}, 404, user=user)
    error = {"action": action, "status": r.status, "reason": r.reason()}
    return render(request, "case.html", {**ctx, "error": error, "done": None}, r.status, user)


@router.get("/cases/{case_id}/agreement.pdf")
async def agreement_pdf(case_id: str, user: CurrentUser, api: ApiDep) -> Response:
    """The 调解协议书 as PDF, as mediation renders it for this person."""
    r = await api.get(
        "mediation",
        f"/v1/cases/{case_id}/agreement/document",
        user.token,
        params={"format": "pdf"},
    )
    if not r.ok:
        return Response("没有可下载的协议书", status_code=404, media_type="text/plain")
    return Response(
        r.content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="agreement-{case_id}.pdf"'},
    )
