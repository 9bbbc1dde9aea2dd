"""演示上报 (dev mode only): file a grid report through intake with the demo integrator's key, so
a person trying `make run` can take a case from received to closed without curl."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from services.console.web import ApiDep, Csrf, CurrentUser, SettingsDep, render

router = APIRouter()

SAMPLE = "网格员走访：两户邻居因楼上漏水把楼下天花板泡坏发生争吵，楼上不愿赔偿维修费，请求调解。"
GRIDS = {
    "522731001001": "城关镇东街社区一网格",
    "522731001002": "城关镇东街社区二网格",
    "522731002001": "南溪县第二镇一网格",
}
# where the demo grids lie (made up, in 黔东南): a report lands a few hundred metres around it
GRID_CENTRES = {
    "522731001001": (26.5834, 107.9772),
    "522731001002": (26.5791, 107.9850),
    "522731002001": (26.6203, 108.0411),
}


def demo_grid_key(settings: Any) -> str | None:
    """The demo grid integrator's API key from `make run`'s credentials file (dev mode only)."""
    if not settings.dev_mode:
        return None
    try:
        data = json.loads(settings.demo_credentials.read_text(encoding="utf-8"))
        key = data["integrators"]["grid"]["api_key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return key if isinstance(key, str) else None


def near(grid_code: str) -> dict[str, float]:
    """Coordinates a few hundred metres around a demo grid's centre (none for other grids)."""
    if grid_code not in GRID_CENTRES:
        return {}
    lat, lon = GRID_CENTRES[grid_code]
    rng = secrets.SystemRandom()
    return {
        "lat": round(lat + rng.uniform(-0.003, 0.003), 6),
        "lon": round(lon + rng.uniform(-0.003, 0.003), 6),
    }


@router.get("/demo/report")
async def report_form(request: Request, user: CurrentUser, settings: SettingsDep) -> Response:
    """The form (404 outside dev mode or without demo credentials)."""
    if demo_grid_key(settings) is None:
        return render(request, "error.html", {"status": 404, "detail": "仅开发模式可用"}, 404, user)
    return render(
        request, "demo_report.html", {"sample": SAMPLE, "grids": GRIDS, "result": None}, user=user
    )


@router.post("/demo/report")
async def file_report(
    request: Request,
    user: CurrentUser,
    api: ApiDep,
    settings: SettingsDep,
    _csrf: Csrf,
    text: Annotated[str, Form(max_length=10000)] = "",
    grid_code: Annotated[str, Form(max_length=20)] = "522731001001",
    applicant: Annotated[str, Form(max_length=50)] = "",
    phone: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """POST /v1/reports to intake as the demo grid app would; shows the case id."""
    key = demo_grid_key(settings)
    if key is None:
        return render(request, "error.html", {"status": 404, "detail": "仅开发模式可用"}, 404, user)
    party: dict[str, Any] = {"name": applicant.strip() or "张建华", "role": "applicant"}
    if phone.strip():
        party["phone"] = phone.strip()
    body = {
        "source": "grid",
        "source_ref": f"CONSOLE-{uuid.uuid4().hex[:12]}",
        "reported_at": datetime.now(UTC).isoformat(),
        "text": text.strip() or SAMPLE,
        "location": {
            "grid_code": grid_code,
            "address": GRIDS.get(grid_code, ""),
            **near(grid_code),
        },
        "reporter": {"name": "演示网格员", "role": "grid_worker"},
        "parties": [party, {"name": "李桂芳", "role": "respondent"}],
    }
    r = await api.post_report(key, body)
    result = (
        {"ok": True, "case_id": r.body.get("case_id"), "merged": r.body.get("merged")}
        if r.ok and isinstance(r.body, dict)
        else {"ok": False, "reason": r.reason(), "status": r.status}
    )
    return render(
        request,
        "demo_report.html",
        {"sample": SAMPLE, "grids": GRIDS, "result": result},
        200 if r.ok else r.status,
        user,
    )
