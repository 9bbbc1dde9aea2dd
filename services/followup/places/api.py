"""Place routes: one case's place (exact for its mediators), and coarse map points."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from services.followup import repository as repo
from services.followup.api import tagged
from services.followup.domain import scope_of
from services.followup.places import repository as prepo
from services.followup.places.domain import COARSE_PRECISION_M
from services.followup.reporting.api import period_of
from services.followup.reporting.domain import TIME_ZONE
from services.followup.schemas import CasePlace, MapPoints
from services.followup.warnings.domain import area_levels
from shared.audit import audit_clear_read
from shared.errors import NotFound
from shared.scope import can_see_clear
from shared.web import CurrentStaff

router = APIRouter(prefix="/v1", tags=["places"])


@router.get("/cases/{case_id}/place", response_model=CasePlace)
async def case_place(case_id: str, request: Request, staff: CurrentStaff) -> Response:
    """Grid code, its areas, and coordinates: exact for the case's mediators, else ~100 m."""
    async with request.app.state.runtime.sessions() as session:
        case = await repo.get_case(session, case_id, scope_of(staff))
        if case is None:
            raise NotFound("case", "case_id")
        place = await session.get(prepo.CasePlace, case_id)
    body: dict[str, Any] = {
        "case_id": case_id,
        "grid_code": case.grid_code,
        "areas": area_levels(case.grid_code),
        "location": None,
    }
    if place is not None:
        if can_see_clear(staff, repo.followup_scope_facts(None, case)):
            exact = request.app.state.runtime.cipher.unseal(place.exact_sealed)
            body["location"] = {"lat": exact["lat"], "lon": exact["lon"], "precision_m": None}
            # exact coordinates point at a home: a clear read of personal data
            await audit_clear_read(request, staff, [case_id], ["location.exact"])
        else:
            body["location"] = {
                "lat": place.lat_coarse,
                "lon": place.lon_coarse,
                "precision_m": COARSE_PRECISION_M,
            }
    return tagged(request, body)


@router.get("/places", response_model=MapPoints)
async def map_points(
    request: Request,
    staff: CurrentStaff,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    area: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9A-Za-z\-_.]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Response:
    """Coarse points (~100 m) of the cases received in a period, for a map."""
    first, last = period_of(request, first, last)
    async with request.app.state.runtime.sessions() as session:
        rows = await prepo.places(session, scope_of(staff), first, last, area, limit)
    return tagged(
        request,
        {
            "period": {"from": first.isoformat(), "to": last.isoformat()},
            "time_zone": TIME_ZONE,
            "precision_m": COARSE_PRECISION_M,
            "items": [
                {
                    "case_id": c.case_id,
                    "grid_code": c.grid_code,
                    "status": c.status,
                    "dispute_type": c.dispute_type,
                    "severity": c.severity,
                    "lat": p.lat_coarse,
                    "lon": p.lon_coarse,
                }
                for p, c in rows
            ],
        },
    )
