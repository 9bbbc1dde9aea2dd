"""Read audit (DOMAIN.md §7): every response that shows personal data in clear leaves a row —
who, when, which case, which fields, by which route — in the service's own `read_audit` table,
written in its own transaction before the response goes out. Admins read them at
GET /v1/admin/audit on each service (each service audits what it shows).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlmodel import col, select

from shared.auth import StaffPrincipal
from shared.errors import Forbidden
from shared.events import utcnow
from shared.responses import AuditPage


async def audit_clear_read(
    request: Request, staff: StaffPrincipal, case_ids: Sequence[str], fields: Sequence[str]
) -> None:
    """Record that `staff` was shown these fields of these cases in clear."""
    rt = request.app.state.runtime
    route = f"{request.method} {request.url.path}"
    await record_clear_read(rt.delivery, staff, case_ids, fields, route)


async def record_clear_read(
    delivery: Any,
    staff: StaffPrincipal,
    case_ids: Sequence[str],
    fields: Sequence[str],
    route: str,
) -> None:
    """The same, for callers that hold the service's Delivery rather than the request."""
    if not case_ids:
        return
    table = delivery.tables.audit
    now = utcnow()
    async with delivery.sessions() as session, session.begin():
        for case_id in dict.fromkeys(case_ids):
            session.add(
                table(
                    at=now,
                    subject=staff.subject[:64],
                    role=staff.role,
                    case_id=case_id[:64],
                    fields=list(fields),
                    route=route[:200],
                )
            )


def audit_router(current_staff: Any) -> APIRouter:
    """GET /v1/admin/audit: clear reads, newest first, filtered by case or member of staff."""
    router = APIRouter(prefix="/v1/admin", tags=["audit"])

    @router.get("/audit", response_model=AuditPage)
    async def read_audit(
        request: Request,
        staff: StaffPrincipal = current_staff,
        case_id: Annotated[str | None, Query(max_length=64)] = None,
        subject: Annotated[str | None, Query(max_length=64)] = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """Who read which case's personal data in clear (admins only)."""
        if staff.role != "admin":
            raise Forbidden("only admins read the audit")
        rt = request.app.state.runtime
        t = rt.delivery.tables.audit
        stmt = select(t)
        if case_id:
            stmt = stmt.where(t.case_id == case_id)
        if subject:
            stmt = stmt.where(t.subject == subject)
        if since:
            stmt = stmt.where(col(t.at) >= since)
        stmt = stmt.order_by(col(t.id).desc()).limit(limit)
        async with rt.sessions() as session:
            rows = (await session.exec(stmt)).all()
        return {
            "items": [
                {
                    "at": r.at,
                    "subject": r.subject,
                    "role": r.role,
                    "case_id": r.case_id,
                    "fields": r.fields,
                    "route": r.route,
                }
                for r in rows
            ]
        }

    return router
