"""Warning routes: the list a coordinator works from, one warning, and its acknowledgement."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi import Query as Q
from pydantic import BaseModel, Field
from sqlmodel import col, select

from services.followup import repository as repo
from services.followup.api import invalid, tagged
from services.followup.domain import CaseFilters, as_utc, in_scope, scope_of
from services.followup.repository import LedgerCase
from services.followup.schemas import WarningPage, WarningPublic
from services.followup.warnings import repository as wrepo
from services.followup.warnings.repository import WarningRow
from shared.contracts import WarningAcknowledged, WarningKind, WarningStatus
from shared.errors import Conflict, Forbidden, NotFound
from shared.pii import redact_text
from shared.web import CurrentStaff

router = APIRouter(prefix="/v1", tags=["warnings"])


class AcknowledgeBody(BaseModel):
    """A coordinator's note on a warning (研判意见)."""

    note: str = Field(min_length=1, max_length=1000)


def _time(value: datetime | None) -> str | None:
    at = as_utc(value)
    return at.isoformat().replace("+00:00", "Z") if at else None


async def visible_cases(session: Any, staff: Any, rows: list[WarningRow]) -> set[str]:
    """The cases named by some warnings that the caller may see (a warning may name more)."""
    ids = sorted({c for w in rows for c in w.case_ids})
    if not ids:
        return set()
    stmt = select(LedgerCase.case_id).where(
        col(LedgerCase.case_id).in_(ids), *repo.case_conditions(CaseFilters(), scope_of(staff))
    )
    return set((await session.exec(stmt)).all())


def warning_public(w: WarningRow, visible: set[str] | None = None) -> dict[str, Any]:
    """A warning as dashboards see it: cases, facts (no phone or ID), where it stands.

    `visible` drops the named cases the caller may not see (a rising village names every case
    in it, some perhaps of a tier above the caller's); `hidden_cases` says how many.
    """
    shown = w.case_ids if visible is None else [c for c in w.case_ids if c in visible]
    return {
        "warning_id": w.warning_id,
        "kind": w.kind,
        "status": w.status,
        "key": w.subject,
        "tier": w.tier,
        "area_code": w.area_code,
        "case_ids": shown,
        "hidden_cases": len(w.case_ids) - len(shown),
        "facts": w.facts,
        "raised_at": _time(w.raised_at),
        "updated_at": _time(w.updated_at),
        "acknowledged_at": _time(w.acknowledged_at),
        "acknowledged_by": w.acknowledged_by,
        "note": w.note,
        "cleared_at": _time(w.cleared_at),
        "clear_reason": w.clear_reason,
    }


def _cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"w": last_id}).encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["w"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise invalid("cursor", "not a cursor returned by this API") from None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise invalid("cursor", "not a cursor returned by this API")
    return value


@router.get("/warnings", response_model=WarningPage)
async def list_warnings(
    request: Request,
    staff: CurrentStaff,
    kind: WarningKind | None = None,
    area: Annotated[str | None, Q(max_length=64, pattern=r"^[0-9A-Za-z\-_.]+$")] = None,
    tier: Literal["grid", "town", "county"] | None = None,
    status: WarningStatus | None = None,
    case_id: Annotated[str | None, Q(min_length=1, max_length=64)] = None,
    cursor: Annotated[str | None, Q(max_length=200)] = None,
    limit: Annotated[int, Q(ge=1, le=500)] = 100,
) -> Response:
    """Warnings the caller may see, newest first; `area` is a grid-code prefix.

    `case_id`: the warnings that name a case (open, acknowledged or cleared); 404 when the case
    does not exist for the caller.
    """
    before = _decode(cursor) if cursor else None
    conditions = wrepo.warning_conditions(
        scope_of(staff),
        kind.value if kind else None,
        area,
        tier,
        status.value if status else None,
        case_id,
    )
    async with request.app.state.runtime.sessions() as session:
        if case_id is not None and await repo.get_case(session, case_id, scope_of(staff)) is None:
            raise NotFound("case", "case_id")
        rows = await wrepo.list_warnings(session, conditions, before, limit + 1)
        has_more = len(rows) > limit
        rows = rows[:limit]
        visible = await visible_cases(session, staff, rows)
    last = rows[-1].id if rows and has_more else None
    return tagged(
        request,
        {
            "items": [warning_public(w, visible) for w in rows],
            "count": len(rows),
            "has_more": has_more,
            "next_cursor": _cursor(last) if last is not None else None,
        },
    )


async def _visible(
    request: Request, staff: CurrentStaff, warning_id: str
) -> tuple[WarningRow, set[str]]:
    async with request.app.state.runtime.sessions() as session:
        w = await wrepo.by_id(session, warning_id)
        if w is None or not in_scope(scope_of(staff), wrepo.scope_facts(w)):
            raise NotFound("warning", "warning_id")
        return w, await visible_cases(session, staff, [w])


@router.get("/warnings/{warning_id}", response_model=WarningPublic)
async def get_warning(warning_id: str, request: Request, staff: CurrentStaff) -> Response:
    """One warning."""
    return tagged(request, warning_public(*await _visible(request, staff, warning_id)))


@router.post("/warnings/{warning_id}/acknowledge", response_model=WarningPublic)
async def acknowledge(
    warning_id: str, body: AcknowledgeBody, request: Request, staff: CurrentStaff
) -> dict[str, Any]:
    """A coordinator has looked at the warning (研判): a trail entry on every case it names and
    a warning.acknowledged event on cases.warnings, in one transaction."""
    _, visible = await _visible(request, staff, warning_id)
    if staff.role not in ("coordinator", "admin"):
        raise Forbidden("only a coordinator acknowledges a warning")
    delivery = request.app.state.runtime.delivery
    now = request.app.state.clock.now()
    note = redact_text(body.note)
    actor = f"user:{staff.subject}"
    async with delivery.transaction() as tx:
        w = await wrepo.by_id(tx.session, warning_id)
        assert w is not None
        if w.status != WarningStatus.open:
            raise Conflict(f"the warning is {w.status}, not open")
        w.status, w.acknowledged_at = WarningStatus.acknowledged, now
        w.acknowledged_by, w.note, w.updated_at = actor[:128], note, now
        tx.session.add(w)
        for case_id in w.case_ids:
            case = await tx.session.get(LedgerCase, case_id)
            status = case.status if case else "received"
            tx.transition(
                case_id,
                action="acknowledge_warning",
                from_status=status,
                to_status=status,
                actor=actor,
                actor_role=staff.role,
                reason=f"预警已研判（{w.kind}）：{note}",
                details={"warning_id": w.warning_id, "kind": w.kind},
                at=now,
            )
        topics = request.app.state.runtime.topics
        tx.emit(
            topics.warnings,
            "warning.acknowledged",
            WarningAcknowledged(
                warning_id=w.warning_id,
                kind=WarningKind(w.kind),
                key=w.subject,
                case_ids=w.case_ids,
                acknowledged_by=w.acknowledged_by,
                note=note,
                acknowledged_at=now,
            ),
            w.subject,
        )
        out = warning_public(w, visible)
    return out
