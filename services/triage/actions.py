"""Commands people issue to triage over HTTP: one transaction each (state + trail + outbox)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.triage.case_scope import case_scope
from services.triage.domain import decide
from services.triage.handlers import route_case, triage_input
from services.triage.repository import TriageCase, latest_review
from services.triage.rules import RulesStore
from shared.auth import StaffPrincipal
from shared.contracts import CaseStatus
from shared.db import Delivery
from shared.events import utcnow
from shared.scope import can_see
from shared.topics import Topics


class ReviewNotFound(LookupError):
    """No review of this case (or none the caller may see)."""


class ReviewClosed(Exception):
    """The review was already confirmed or corrected."""


@dataclass(frozen=True)
class ReviewVerdict:
    """A coordinator's answer: confirm the decision, or correct type and/or severity."""

    confirm: bool
    dispute_type: str | None = None
    severity: str | None = None
    note: str = ""


def aware(when: datetime) -> datetime:
    """SQLite hands timestamps back without a zone: they were written in UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def in_scope(staff: StaffPrincipal, case: TriageCase) -> bool:
    """Whether the caller sees the case (shared.scope: tier and area; admin everything)."""
    return can_see(staff, case_scope(case, None))


async def resolve_review(
    delivery: Delivery,
    topics: Topics,
    rules: RulesStore,
    case_id: str,
    staff: StaffPrincipal,
    verdict: ReviewVerdict,
) -> dict[str, Any]:
    """Confirm or correct the pending review of a case; a correction re-decides and re-routes."""
    async with delivery.transaction() as tx:
        review = await latest_review(tx.session, case_id)
        case = await tx.session.get(TriageCase, case_id)
        if review is None or case is None or not in_scope(staff, case):
            raise ReviewNotFound(case_id)
        if review.status != "pending":
            raise ReviewClosed(review.status)
        now = utcnow()
        before = {
            "dispute_type": case.dispute_type,
            "severity": case.severity,
            "channel": case.channel,
            "tier": case.tier,
        }
        review.resolved_at, review.resolved_by = now, staff.subject
        review.note = verdict.note or None
        late = now > aware(review.confirm_due)
        if verdict.confirm:
            review.status = "confirmed"
            tx.session.add(review)
            tx.transition(
                case_id,
                action="review_confirm",
                from_status=CaseStatus.triaged,
                to_status=CaseStatus.triaged,
                actor=staff.subject,
                actor_role=staff.role,
                reason=verdict.note or "协调员确认分流结论",
                details={"review_cues": review.cues, "decision": before, "late": late},
                at=now,
            )
            return {"case_id": case_id, "status": "confirmed", "decision": before, "late": late}
        case.corrected_type = verdict.dispute_type or case.corrected_type
        case.corrected_severity = verdict.severity or case.corrected_severity
        preview = decide(triage_input(case), rules.current, now)
        correction: dict[str, Any] = {
            "by": staff.subject,
            "role": staff.role,
            "note": verdict.note,
            "from": before,
            "to": {
                "dispute_type": preview.dispute_type,
                "severity": preview.severity,
                "channel": preview.channel,
                "tier": preview.tier,
            },
            "review_cues": review.cues,
        }
        decision = await route_case(
            tx,
            topics,
            rules,
            case,
            action="review_correct",
            from_status=CaseStatus.triaged,
            reason=f"协调员更正：{verdict.note}",
            now=now,
            actor=staff.subject,
            actor_role=staff.role,
            correction=correction,
        )
        after = {
            "dispute_type": decision.dispute_type,
            "severity": decision.severity,
            "channel": decision.channel,
            "tier": decision.tier,
        }
        review.status = "corrected"
        review.correction = {"from": before, "to": after}
        tx.session.add(review)
        rerouted = (before["channel"], before["tier"]) != (after["channel"], after["tier"])
        return {
            "case_id": case_id,
            "status": "corrected",
            "from": before,
            "to": after,
            "rerouted": rerouted,
            "attempt": case.attempt,
            "late": late,
        }
