"""Intake HTTP routes: reports (single and batch), report status, integrator admin."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.intake.callbacks import UnsafeCallback, check_callback_url
from services.intake.canonical import FieldError, parse_json, validate_report
from services.intake.domain import (
    STATUS_NOTES,
    as_utc,
    masked_location,
    masked_person,
    masked_text,
)
from services.intake.edge import (
    API_KEY_PARAMETER,
    CurrentIntegrator,
    calling_integrator,
    forbid_source,
    handlers_of,
    invalid,
    read_body,
    receipts_of,
    require_content_type,
    settings_of,
)
from services.intake.handlers import IntakeHandlers, Receipt
from services.intake.integrators import create_integrator
from services.intake.repository import IntakeCase, IntakeReport, report_by_ref, reports_of_case
from services.intake.schemas import (
    BatchResult,
    CaseReports,
    IntegratorCreated,
    ReportReceipt,
    ReportStatus,
)
from shared.audit import audit_clear_read
from shared.errors import ApiError, Forbidden, NotFound
from shared.events import utcnow
from shared.scope import CaseScope, can_see, can_see_clear
from shared.topics import SOURCES
from shared.web import CurrentStaff

router = APIRouter(prefix="/v1", tags=["intake"])

REPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["source", "source_ref", "text"],
                    "description": "canonical report, see docs/intake.md",
                }
            }
        },
    }
}


def status_url(source: str, source_ref: str) -> str:
    """Where the sender can read the report's current status."""
    return f"/v1/reports/{source}/{quote(source_ref, safe='')}"


def receipt_body(r: Receipt) -> dict[str, Any]:
    """The 202 answer for a stored report."""
    return {
        "case_id": r.case_id,
        "source": r.source,
        "source_ref": r.source_ref,
        "status_url": status_url(r.source, r.source_ref),
        "merged": r.merged,
        "duplicate": r.duplicate,
    }


@router.post(
    "/reports",
    status_code=202,
    response_model=ReportReceipt,
    openapi_extra=REPORT_BODY | {"parameters": [API_KEY_PARAMETER]},
)
async def submit_report(request: Request) -> JSONResponse:
    """Accept one canonical report; stored (new case or 并单) before the 202."""
    integ = await calling_integrator(request)
    s = settings_of(request)
    require_content_type(request, "application/json")
    raw = await read_body(request, s.max_body_bytes)
    try:
        report = validate_report(
            parse_json(raw),
            max_text_chars=s.max_text_chars,
            max_future_skew_s=s.max_future_skew_s,
            now=utcnow(),
        )
    except FieldError as exc:
        invalid(exc.errors)
    forbid_source(integ, report.source)
    receipt = await receipts_of(request).receive(report, via="http", integrator_id=integ.id)
    return JSONResponse(receipt_body(receipt), status_code=202)


@router.post(
    "/reports:batch",
    response_model=BatchResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["reports"],
                        "properties": {"reports": {"type": "array"}},
                    }
                }
            },
        }
    },
)
async def submit_batch(request: Request, integ: CurrentIntegrator) -> dict[str, Any]:
    """Accept up to max_batch_items reports; each gets its own result (stored together, a
    report that fails falls back to a transaction of its own)."""
    s = settings_of(request)
    require_content_type(request, "application/json")
    raw = await read_body(request, s.max_batch_body_bytes)
    try:
        data = parse_json(raw)
    except FieldError as exc:
        invalid(exc.errors)
    items = data.get("reports") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        invalid([{"field": "reports", "reason": "a non-empty list of reports is required"}])
    if len(items) > s.max_batch_items:
        invalid([{"field": "reports", "reason": f"at most {s.max_batch_items} reports"}])
    writer, now = receipts_of(request), utcnow()
    results: list[dict[str, Any]] = []
    stored: list[tuple[int, Awaitable[Receipt]]] = []  # stored together, in the batch's order
    for i, item in enumerate(items):
        try:
            report = validate_report(
                item,
                max_text_chars=s.max_text_chars,
                max_future_skew_s=s.max_future_skew_s,
                now=now,
                prefix=f"reports.{i}",
            )
        except FieldError as exc:
            results.append({"index": i, "status": 422, "errors": exc.errors})
            continue
        if report.source != integ.source:
            results.append(
                {
                    "index": i,
                    "status": 403,
                    "errors": [
                        {
                            "field": f"reports.{i}.source",
                            "reason": f"this key may act only for source {integ.source}",
                        }
                    ],
                }
            )
            continue
        results.append({"index": i, "status": 202})
        storing = writer.receive(report, via="batch", integrator_id=integ.id)
        stored.append((len(results) - 1, storing))
    receipts = await asyncio.gather(*(r for _, r in stored), return_exceptions=True)
    for (at, _), done in zip(stored, receipts, strict=True):
        if isinstance(done, ApiError):  # this report alone (e.g. another sender's source_ref)
            results[at].update(status=done.status_code, errors=done.errors)
        elif isinstance(done, BaseException):
            raise done
        else:
            results[at].update(receipt_body(done))
    accepted = sum(1 for r in results if r["status"] == 202)
    return {"accepted": accepted, "rejected": len(results) - accepted, "results": results}


@router.get("/reports/{source}/{source_ref}", response_model=ReportStatus)
async def report_status(
    source: str, source_ref: str, request: Request, integ: CurrentIntegrator
) -> dict[str, Any]:
    """The current status and case of a report, personal data masked."""
    if source not in SOURCES:
        invalid([{"field": "source", "reason": f"unknown source; one of {', '.join(SOURCES)}"}])
    forbid_source(integ, source)
    h = handlers_of(request)
    async with h.delivery.sessions() as session:
        row = await report_by_ref(session, source, source_ref)
        case = await session.get(IntakeCase, row.case_id) if row else None
        own = len(await reports_of_case(session, row.case_id)) if row else 0
    # an integrator reads only the reports it sent itself, never another integrator's (those a
    # source system published natively on Kafka belong to no integrator: that source's keys)
    if row is None or case is None or row.integrator_id not in (None, integ.id):
        raise NotFound("report", "source_ref")
    fields = h.opened(row)
    return {
        "source": row.source,
        "source_ref": row.source_ref,
        "case_id": row.case_id,
        "status": case.status,
        "status_note": STATUS_NOTES.get(case.status, case.status),
        "status_at": as_utc(case.status_at).isoformat(),
        "merged": row.merged,
        # this sender's own reports only: other senders' reports of the parties stay unseen
        "repeat_count": own,
        "dispute_type": case.dispute_type,
        "received_at": as_utc(row.received_at).isoformat(),
        "reported_at": as_utc(row.reported_at).isoformat() if row.reported_at else None,
        "category": row.category,
        "reporter": masked_person(fields["reporter"]),
        "parties": [masked_person(p) for p in fields["parties"]],
        "location": masked_location(fields["location"], row.grid_code),
    }


REPORT_CLEAR_FIELDS = ("text", "reporter", "parties", "location")


def case_scope(case: IntakeCase) -> CaseScope:
    """Who may read a case, as intake knows it (its report's area and the trail)."""
    return CaseScope(
        tier=case.tier,
        grid_code=case.grid_code,
        organisation_id=case.organisation_id,
        channel=case.channel,
        mediator_id=case.mediator_id,
        co_channels=tuple(case.co_channels or ()),
    )


def report_view(h: IntakeHandlers, row: IntakeReport, clear: bool) -> dict[str, Any]:
    """One stored report; personal data in clear only for roles that work with the parties."""
    fields = h.opened(row)
    reporter, parties, location = fields["reporter"], fields["parties"], fields["location"]
    text: str = fields["text"]
    if not clear:
        text = masked_text(
            text,
            [p.get("name") for p in [reporter or {}, *parties]],
            [(location or {}).get("address")],
        )
        reporter = masked_person(reporter)
        parties = [masked_person(p) for p in parties]
        location = masked_location(location, row.grid_code)
    return {
        "source": row.source,
        "source_ref": row.source_ref,
        "via": row.via,
        "merged": row.merged,
        "received_at": as_utc(row.received_at).isoformat(),
        "reported_at": as_utc(row.reported_at).isoformat() if row.reported_at else None,
        "category": row.category,
        "grid_code": row.grid_code,
        "text": text,
        "reporter": reporter,
        "parties": parties,
        "location": location,
    }


@router.get("/cases/{case_id}/reports", response_model=CaseReports)
async def case_reports(case_id: str, request: Request, staff: CurrentStaff) -> dict[str, Any]:
    """Every report of a case inside the caller's scope (shared.scope): in clear for those who
    see the case in clear, masked for the others; 404 outside the scope."""
    h = handlers_of(request)
    async with h.delivery.sessions() as session:
        case = await session.get(IntakeCase, case_id)
        rows = await reports_of_case(session, case_id) if case else []
    if case is None or not can_see(staff, case_scope(case)):
        raise NotFound("case", "case_id")
    clear = can_see_clear(staff, case_scope(case))
    if clear:
        await audit_clear_read(request, staff, [case_id], REPORT_CLEAR_FIELDS)
    return {
        "case_id": case_id,
        "status": case.status,
        "repeat_count": case.repeat_count,
        "dispute_type": case.dispute_type,
        "personal_data": "clear" if clear else "masked",
        "reports": [report_view(h, r, clear) for r in rows],
    }


class IntegratorCreate(BaseModel):
    """A new integrator: one key, bound to one source; optional status callback."""

    name: str = Field(min_length=1, max_length=200)
    source: Literal["110", "12345", "grid"]
    callback_url: str | None = Field(default=None, max_length=1000, pattern=r"^https?://\S+$")
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=200)


@router.post("/integrators", status_code=201, response_model=IntegratorCreated)
async def add_integrator(
    body: IntegratorCreate, request: Request, staff: CurrentStaff
) -> dict[str, Any]:
    """Create an integrator (admin only); the API key and webhook secret are shown once."""
    if staff.role != "admin":
        raise Forbidden("only admins register integrators")
    if body.callback_url:
        try:
            check_callback_url(body.callback_url, dev_mode=settings_of(request).dev_mode)
        except UnsafeCallback as exc:
            invalid([{"field": "callback_url", "reason": str(exc)}])
    h = handlers_of(request)
    new = await create_integrator(
        h.delivery.sessions,
        h.cipher,
        name=body.name,
        source=body.source,
        callback_url=body.callback_url,
        webhook_secret=body.webhook_secret,
    )
    return {
        "id": new.id,
        "name": new.name,
        "source": new.source,
        "api_key": new.api_key,
        "callback_url": new.callback_url,
        "webhook_secret": new.webhook_secret,
    }
