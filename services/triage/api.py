"""Triage HTTP routes: preview a decision, read a case's decisions, reload the rules."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.triage.case_scope import case_scope
from services.triage.domain import Party, TriageInput, decide
from services.triage.repository import TriageCase, TriageCaseScope, decisions_of
from services.triage.rules import RulesError, RulesStore
from shared.events import utcnow
from shared.scope import can_see
from shared.web import CurrentStaff

router = APIRouter(prefix="/v1", tags=["triage"])


class PartyIn(BaseModel):
    """A party of a report (only name and role matter to triage)."""

    name: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, max_length=40)


class PreviewRequest(BaseModel):
    """A canonical report, as intake accepts it; extra fields are ignored."""

    source: Literal["110", "12345", "grid"]
    source_ref: str | None = Field(default=None, max_length=128)
    text: str = Field(min_length=1, max_length=20000)
    category: str | None = Field(default=None, max_length=200)
    parties: list[PartyIn] = Field(default_factory=list, max_length=50)
    repeat_count: int = Field(default=1, ge=1, le=1000)


def rules_store(request: Request) -> RulesStore:
    """The service's rules store."""
    store: RulesStore = request.app.state.rules
    return store


Rules = Annotated[RulesStore, Depends(rules_store)]


@router.post("/triage/preview")
async def preview(body: PreviewRequest, rules: Rules, staff: CurrentStaff) -> dict[str, Any]:
    """Decide a report without storing anything (staff only; decided off the event loop)."""
    inp = TriageInput(
        source=body.source,
        text=body.text,
        category=body.category,
        parties=tuple(Party(name=p.name, role=p.role) for p in body.parties),
        repeat_count=body.repeat_count,
    )
    # deciding is CPU work: in a worker thread, so /healthz and other requests keep answering
    decision = await run_in_threadpool(decide, inp, rules.current, utcnow())
    out = decision.to_dict()
    out["source_ref"] = body.source_ref
    return out


@router.get("/triage/cases/{case_id}/decisions")
async def case_decisions(case_id: str, request: Request, staff: CurrentStaff) -> dict[str, Any]:
    """Every decision taken on a case, with reasons (staff who see the case; else 404)."""
    async with request.app.state.runtime.sessions() as session:
        rows = await decisions_of(session, case_id)
        case = await session.get(TriageCase, case_id)
        scope_row = await session.get(TriageCaseScope, case_id)
    if not rows or not can_see(staff, case_scope(case, scope_row)):
        raise HTTPException(404, "no such case")
    return {
        "case_id": case_id,
        "decisions": [
            {"attempt": r.attempt, "decided_at": r.decided_at, **r.decision} for r in rows
        ],
    }


@router.get("/triage/rules")
async def rules_info(rules: Rules) -> dict[str, Any]:
    """The version of the rules in force."""
    return {"rules_version": rules.current.version}


@router.post("/triage/rules/reload")
async def reload_rules(rules: Rules, staff: CurrentStaff) -> dict[str, Any]:
    """Reload the rules file without a restart (admin or coordinator)."""
    if staff.role not in ("admin", "coordinator"):
        raise HTTPException(403, "only coordinators and admins reload rules")
    before = rules.current.version
    try:
        rules.reload()
    except RulesError as exc:
        raise HTTPException(
            422,
            {"detail": "rules file invalid", "errors": [{"field": "rules", "reason": str(exc)}]},
        ) from None
    return {"previous_version": before, "rules_version": rules.current.version}
