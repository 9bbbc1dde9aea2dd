"""Deadlines: mark overdue cases and raise a supervision notice (督办) once per case and kind."""

from __future__ import annotations

import asyncio
import logging

from services.mediation.assignment import SYSTEM, Context, trail_details
from services.mediation.domain import (
    MEDIATION_PENDING,
    SIGN_FOR_PENDING,
    SUPERVISION_REASONS,
    Deadlines,
    overdue_kinds,
)
from services.mediation.repository import (
    MediationCase,
    Supervision,
    cases_to_scan,
    supervision_exists,
)
from shared.contracts import SupervisionRaised
from shared.periodic import every

log = logging.getLogger("fengqiao.mediation.supervision")


async def scan_overdue(ctx: Context) -> list[Supervision]:
    """One pass over open cases at the clock's now; returns the notices raised in this pass."""
    now, topics = ctx.clock.now(), ctx.topics
    async with ctx.delivery.sessions() as session:
        candidates = await cases_to_scan(
            session, now, sorted(SIGN_FOR_PENDING), sorted(MEDIATION_PENDING)
        )
    raised: list[Supervision] = []
    for case_id in candidates:  # one transaction per case: a failure touches only that case
        async with ctx.delivery.transaction() as tx:
            case = await tx.session.get(MediationCase, case_id)
            if case is None:
                continue
            kinds = overdue_kinds(
                Deadlines(case.status, case.sign_for_due, case.mediation_due), now
            )
            for kind in kinds:
                flag = "sign_for_overdue" if kind == "sign_for_overdue" else "mediation_overdue"
                if getattr(case, flag):
                    continue
                setattr(case, flag, True)
                if await supervision_exists(tx.session, case.case_id, kind):
                    continue  # once per case and kind, even after a reopened case runs late
                due = case.sign_for_due if kind == "sign_for_overdue" else case.mediation_due
                assert due is not None  # overdue_kinds only names deadlines that exist
                row = Supervision(
                    case_id=case.case_id,
                    kind=kind,
                    tier=case.tier,
                    channel=case.channel,
                    organisation_id=case.organisation_id,
                    mediator_id=case.mediator_id,
                    area_code=case.area_code,
                    due_at=due,
                    raised_at=now,
                )
                tx.session.add(row)
                tx.emit(
                    topics.mediation,
                    "supervision.raised",
                    SupervisionRaised(
                        case_id=case.case_id,
                        kind=kind,
                        tier=case.tier,
                        channel=case.channel,
                        due_at=due,
                        raised_at=now,
                    ),
                    case.case_id,
                )
                tx.transition(
                    case.case_id,
                    action="supervise",
                    from_status=case.status,
                    to_status=case.status,
                    actor=SYSTEM,
                    reason=SUPERVISION_REASONS[kind],
                    details=trail_details(case, kind=kind),
                    at=now,
                )
                raised.append(row)
            tx.session.add(case)
    return raised


async def scan_once(ctx: Context) -> None:
    """One scan, logging what it raised."""
    found = await scan_overdue(ctx)
    if found:
        log.info("supervision raised", extra={"count": len(found)})


def start_scanner(ctx: Context, interval_s: float) -> asyncio.Task[None]:
    """Scan forever at an interval (the lifespan's background task; `periodic.cancel` stops
    it)."""
    return asyncio.create_task(
        every(interval_s, lambda: scan_once(ctx), log, "overdue scan failed")
    )
