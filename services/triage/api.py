"""Triage HTTP routes: preview, a case's decisions, rules reload, the review queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from services.triage.actions import (
    ReviewClosed,
    ReviewNotFound,
    ReviewVerdict,
    aware,
    in_scope,
    resolve_review,
)
from services.triage.case_scope import case_scope
from services.triage.domain import Party, TriageInput, decide
from services.triage.repository import TriageCase, TriageCaseScope, decisions_of, pending_reviews
from services.triage.rules import DisputeType, RulesError, RulesStore, Severity
from services.triage.schemas import CaseDecisions, Preview, RulesInfo, RulesReloaded
from shared.auth import StaffPrincipal
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import utcnow
from shared.pii import redact_text
from shared.responses import StoredText
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


@router.post("/triage/preview", response_model=Preview)
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


@router.get("/triage/cases/{case_id}/decisions", response_model=CaseDecisions)
async def case_decisions(case_id: str, request: Request, staff: CurrentStaff) -> dict[str, Any]:
    """Every decision taken on a case, with reasons (staff who see the case; else 404)."""
    async with request.app.state.runtime.sessions() as session:
        rows = await decisions_of(session, case_id)
        case = await session.get(TriageCase, case_id)
        scope_row = await session.get(TriageCaseScope, case_id)
    if not rows or not can_see(staff, case_scope(case, scope_row)):
        raise NotFound("case", "case_id")
    return {
        "case_id": case_id,
        "decisions": [
            {"attempt": r.attempt, "decided_at": r.decided_at, **r.decision} for r in rows
        ],
    }


@router.get("/triage/rules", response_model=RulesInfo)
async def rules_info(rules: Rules) -> dict[str, Any]:
    """The version of the rules in force."""
    return {"rules_version": rules.current.version}


@router.post("/triage/rules/reload", response_model=RulesReloaded)
async def reload_rules(rules: Rules, staff: CurrentStaff) -> dict[str, Any]:
    """Reload the rules file without a restart (admin or coordinator)."""
    if staff.role not in ("admin", "coordinator"):
        raise Forbidden("only coordinators and admins reload rules")
    before = rules.current.version
    try:
        rules.reload()
    except RulesError as exc:
        raise Invalid("rules file invalid", [{"field": "rules", "reason": str(exc)}]) from None
    return {"previous_version": before, "rules_version": rules.current.version}


class ReviewPublic(BaseModel):
    """A decision waiting for the county centre's confirmation."""

    case_id: str
    source: str
    source_ref: str
    text: str
    attempt: int
    review_cues: list[str]
    dispute_type: str
    severity: str
    channel: str
    tier: str
    grid_code: str | None
    created_at: datetime
    confirm_due: datetime
    overdue: bool


class ReviewList(BaseModel):
    """The pending review queue, the most urgent first."""

    reviews: list[ReviewPublic]


class ReviewCreate(BaseModel):
    """Confirm the decision (`confirm: true`) or correct type and/or severity with a note."""

    confirm: bool = False
    dispute_type: DisputeType | None = None
    severity: Severity | None = None
    note: StoredText = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _one_verdict(self) -> ReviewCreate:
        correcting = self.dispute_type is not None or self.severity is not None
        if self.confirm and correcting:
            raise ValueError("confirm: give either confirm or a correction, not both")
        if not self.confirm and not correcting:
            raise ValueError("confirm: give confirm=true or a dispute_type and/or severity")
        if correcting and not self.note.strip():
            raise ValueError("note: a correction says why")
        return self


class ReviewOutcome(BaseModel):
    """What the review did to the case."""

    case_id: str
    status: Literal["confirmed", "corrected"]
    late: bool
    decision: dict[str, Any] | None = None
    from_: dict[str, Any] | None = Field(default=None, alias="from")
    to: dict[str, Any] | None = None
    rerouted: bool | None = None
    attempt: int | None = None

    model_config = ConfigDict(populate_by_name=True)


def _reviewer(staff: StaffPrincipal) -> None:
    """Only the county centre's coordinators (and admins) work the review queue."""
    if staff.role == "admin":
        return
    if staff.role != "coordinator" or staff.tier not in (None, "county"):
        raise Forbidden("only county coordinators and admins review triage")


@router.get("/triage/review", response_model=ReviewList)
async def review_queue(request: Request, staff: CurrentStaff) -> ReviewList:
    """Pending reviews in the caller's area, with their 15-minute confirm deadline."""
    _reviewer(staff)
    async with request.app.state.runtime.sessions() as session:
        rows = await pending_reviews(session)
    now = utcnow()
    return ReviewList(
        reviews=[
            ReviewPublic(
                case_id=r.case_id,
                source=c.source,
                source_ref=c.source_ref,
                text=c.text,
                attempt=r.attempt,
                review_cues=list(r.cues or []),
                dispute_type=r.dispute_type,
                severity=r.severity,
                channel=r.channel,
                tier=r.tier,
                grid_code=r.grid_code,
                created_at=r.created_at,
                confirm_due=r.confirm_due,
                overdue=aware(r.confirm_due) < now,
            )
            for r, c in rows
            if in_scope(staff, c)
        ]
    )


@router.post(
    "/triage/cases/{case_id}/review", response_model=ReviewOutcome, response_model_by_alias=True
)
async def review_case(
    case_id: str, body: ReviewCreate, request: Request, rules: Rules, staff: CurrentStaff
) -> ReviewOutcome:
    """Confirm or correct a decision under review; a correction re-routes the case if needed."""
    _reviewer(staff)
    rt = request.app.state.runtime
    # the note travels in the trail and the events: phones and ID numbers in it are masked
    note = redact_text(body.note.strip())
    verdict = ReviewVerdict(body.confirm, body.dispute_type, body.severity, note)
    try:
        out = await resolve_review(rt.delivery, rt.topics, rules, case_id, staff, verdict)
    except ReviewNotFound:
        raise NotFound("review of this case", "case_id") from None
    except ReviewClosed as exc:
        raise Conflict(f"review already {exc}") from None
    return ReviewOutcome.model_validate(out)
