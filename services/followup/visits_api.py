"""Visit HTTP routes (回访): record a visit, list a case's visits, the work list of due visits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from services.followup import repository as repo
from services.followup.domain import as_utc, may_record_visits, scope_of
from services.followup.handlers import (
    CaseNotFound,
    FollowupHandlers,
    NotInFollowUp,
    VisitConflict,
    VisitReport,
)
from services.followup.repository import Visit
from services.followup.schemas import CaseVisits, DueVisits, VisitRecorded
from shared.audit import audit_clear_read
from shared.errors import Conflict, Forbidden, NotFound
from shared.pii import PiiCipher
from shared.scope import CaseScope, can_see, can_see_clear
from shared.web import CurrentStaff

router = APIRouter(prefix="/v1", tags=["visits"])


class VisitCreate(BaseModel):
    """One visit as recorded by a mediator or coordinator."""

    method: Literal["visit", "phone", "wechat"]
    honoured: bool
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    note: str | None = Field(default=None, max_length=4000)


def _time(value: datetime | None) -> str | None:
    at = as_utc(value)
    return at.isoformat().replace("+00:00", "Z") if at else None


def visit_public(v: Visit, clear: bool, cipher: PiiCipher) -> dict[str, Any]:
    """A visit; the note (it may name people) only for those who see the case in clear."""
    note = cipher.decrypt(v.note_sealed) if v.note_sealed and clear else None
    return {
        "visit_id": v.id,
        "case_id": v.case_id,
        "round": v.round,
        "number": v.number,
        "agreement_id": v.agreement_id,
        "state": v.state,
        "due_at": _time(v.due_at),
        "method": v.method,
        "honoured": v.honoured,
        "satisfaction": v.satisfaction,
        "note": note,
        "note_hidden": bool(v.note_sealed) and note is None,
        "recorded_at": _time(v.recorded_at),
        "recorded_by": v.recorded_by,
    }


@router.post("/cases/{case_id}/visits", status_code=201, response_model=VisitRecorded)
async def record_visit(
    case_id: str, body: VisitCreate, request: Request, staff: CurrentStaff
) -> dict[str, Any]:
    """Record a visit: not honoured reopens the case; the second honoured visit closes it."""
    if not may_record_visits(staff):
        raise Forbidden("viewers read only")
    # outside the caller's scope, or not the mediator the case is assigned to: 404 (handlers)
    handlers: FollowupHandlers = request.app.state.followup
    try:
        visit, status = await handlers.record_visit(
            case_id,
            scope_of(staff),
            f"user:{staff.subject}",
            staff.role,
            VisitReport(body.method, body.honoured, body.satisfaction, body.note),
        )
    except CaseNotFound:
        raise NotFound("case", "case_id") from None
    except VisitConflict:
        raise Conflict(
            "another visit of this case was recorded at the same time; reload and retry"
        ) from None
    except NotInFollowUp as exc:
        raise Conflict(str(exc), status=exc.status) from None
    if visit.note_sealed:
        await audit_clear_read(request, staff, [case_id], ["visits.note"])
    return {"case_status": status, "visit": visit_public(visit, True, handlers.cipher)}


@router.get("/cases/{case_id}/visits", response_model=CaseVisits)
async def list_visits(case_id: str, request: Request, staff: CurrentStaff) -> dict[str, Any]:
    """Every visit of a case, scheduled, recorded or cancelled."""
    async with request.app.state.runtime.sessions() as session:
        fc = await session.get(repo.FollowupCase, case_id)
        ledger = await session.get(repo.LedgerCase, case_id)
        if fc is None and ledger is None:
            raise NotFound("case", "case_id")
        case = repo.followup_scope_facts(fc, ledger)
        if not can_see(staff, case):
            raise NotFound("case", "case_id")
        visits = await repo.visits_of(session, case_id)
    cipher: PiiCipher = request.app.state.followup.cipher
    clear = can_see_clear(staff, case)
    if clear and any(v.note_sealed for v in visits):
        await audit_clear_read(request, staff, [case_id], ["visits.note"])
    return {
        "case_id": case_id,
        "status": fc.status if fc else None,
        "visits": [visit_public(v, clear, cipher) for v in visits],
    }


@router.get("/visits/due", response_model=DueVisits)
async def due_visits(
    request: Request,
    staff: CurrentStaff,
    by: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Scheduled visits due by a time (default now), earliest first: a coordinator's work list."""
    handlers: FollowupHandlers = request.app.state.followup
    when = as_utc(by) or handlers.clock.now()
    async with request.app.state.runtime.sessions() as session:
        rows = await repo.due_visits(session, when, scope_of(staff), limit)
    clear = {
        v.id: can_see_clear(
            staff,
            CaseScope(
                tier=fc.tier,
                grid_code=grid,
                organisation_id=fc.organisation_id,
                channel=fc.channel,
                mediator_id=fc.mediator_id,
            ),
        )
        for v, fc, grid in rows
    }
    shown = [v.case_id for v, _, _ in rows if clear[v.id] and v.note_sealed]
    await audit_clear_read(request, staff, shown, ["visits.note"])
    return {
        "by": _time(when),
        "items": [
            {
                **visit_public(v, clear[v.id], handlers.cipher),
                "channel": fc.channel,
                "tier": fc.tier,
                "organisation_id": fc.organisation_id,
                "mediator_id": fc.mediator_id,
                "grid_code": grid,
            }
            for v, fc, grid in rows
        ],
    }
