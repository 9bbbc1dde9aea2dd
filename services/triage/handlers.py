"""Triage handlers: one transaction per partition batch (state + decision + trail + outbox).

A new case is a plain NewCase, and decisions and reviews plain rows, inserted by Core at the
batch's commit (Tx.add_rows); stored cases are ORM rows read once per batch (Tx.get).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.triage.domain import Party, TriageDecision, TriageInput, decide
from services.triage.repository import (
    AnyCase,
    NewCase,
    TriageCase,
    TriageDecisionRow,
    TriageReview,
    pending_reviews_of,
)
from services.triage.rules import RulesStore
from shared import metrics
from shared.contracts import (
    CaseReturned,
    CaseStatus,
    CaseTriaged,
    PartyRef,
    ReportReceived,
    ReportRepeated,
)
from shared.db import Delivery, Tx, find_new_or_stored, save_new_or_stored
from shared.db import insert_new as insert_new_row
from shared.events import Envelope, utcnow
from shared.topics import Topics

ACTOR = "system:triage"
_NEW_REVIEWS = "triage.new_reviews"  # batch memo: case id → review rows queued in this batch


def save(tx: Tx, case: AnyCase) -> None:
    """Keep the case's changes (a new case's in its queued row)."""
    save_new_or_stored(tx, case)


def insert_new(tx: Tx, case: NewCase) -> None:
    """Queue a new case's row (one executemany per batch); later events of the batch find it."""
    insert_new_row(tx, TriageCase, case)


async def find_case(tx: Tx, case_id: str, *, expect_new: bool = False) -> AnyCase | None:
    """The case: new in this batch (not written yet), else the stored row (`expect_new`: a
    first routing, which reads no stored rows in a batch)."""
    found: AnyCase | None = await find_new_or_stored(tx, TriageCase, case_id, expect_new=expect_new)
    return found


async def _supersede_reviews(tx: Tx, case_id: str, now: datetime) -> None:
    """Older pending reviews of the case are superseded by a newer decision: the stored ones,
    and those queued earlier in this batch (not written yet, so no query finds them)."""
    for old in await pending_reviews_of(tx.session, case_id):
        old.status, old.resolved_at = "superseded", now
        tx.session.add(old)
    if tx.batch is not None:
        for row in tx.batch.memo.get(_NEW_REVIEWS, {}).get(case_id, []):
            if row["status"] == "pending":
                row["status"], row["resolved_at"] = "superseded", now


def triage_input(case: AnyCase) -> TriageInput:
    """What the rules see of a stored case."""
    parties = tuple(Party(name=p.get("display"), role=p.get("role")) for p in case.parties)
    return TriageInput(
        source=case.source,
        text=case.text,
        category=case.category,
        parties=parties,
        repeat_count=case.repeat_count,
        excluded_channels=frozenset(case.excluded_channels),
        return_count=case.return_count,
        corrected_type=case.corrected_type,
        corrected_severity=case.corrected_severity,
    )


def decision_details(out: dict[str, Any]) -> dict[str, Any]:
    """The non-personal summary of a decision (its to_dict()) that the trail carries."""
    return {
        k: out[k]
        for k in (
            "dispute_type",
            "severity",
            "channel",
            "co_channels",
            "tier",
            "rule_id",
            "rules_version",
            "deadlines",
            "reasons",
            "review",
            "review_cues",
        )
    }


async def route_case(
    tx: Tx,
    topics: Topics,
    rules: RulesStore,
    case: AnyCase,
    *,
    action: str,
    from_status: str,
    reason: str,
    now: datetime,
    actor: str = ACTOR,
    actor_role: str = "system",
    correction: dict[str, Any] | None = None,
) -> TriageDecision:
    """Decide the case, store the decision, append the trail and emit case.triaged.

    A decision the rules are unsure of (review) also opens a review for the county centre.
    """
    current = rules.current
    decision = decide(triage_input(case), current, now)
    metrics.triage_decided(decision.rule_id, decision.severity, decision.review)
    decided = decision.to_dict()
    case.attempt += 1
    case.dispute_type, case.severity = decision.dispute_type, decision.severity
    case.channel, case.tier, case.updated_at = decision.channel, decision.tier, now
    save(tx, case)
    tx.add_rows(
        TriageDecisionRow,
        [
            {
                "case_id": case.case_id,
                "attempt": case.attempt,
                "rules_version": decision.rules_version,
                "decision": decided,
                "decided_at": now,
            }
        ],
    )
    # a newer decision answers for the case: older pending reviews of it are superseded
    # (a case's first decision has no older review to supersede: no query)
    if case.attempt > 1:
        await _supersede_reviews(tx, case.case_id, now)
    if decision.review:
        review: dict[str, Any] = {
            "case_id": case.case_id,
            "attempt": case.attempt,
            "status": "pending",
            "cues": list(decision.review_cues),
            "grid_code": case.grid_code,
            "dispute_type": decision.dispute_type,
            "severity": decision.severity,
            "channel": decision.channel,
            "tier": decision.tier,
            "created_at": now,
            "confirm_due": now + timedelta(minutes=current.review.confirm_minutes),
            "resolved_at": None,
            "resolved_by": None,
            "note": None,
            "correction": {},
        }
        tx.add_rows(TriageReview, [review])
        if tx.batch is not None:
            tx.batch.memo.setdefault(_NEW_REVIEWS, {}).setdefault(case.case_id, []).append(review)
    details = decision_details(decided) | {
        "source": case.source,
        "source_ref": case.source_ref,
        "grid_code": case.grid_code,
        "attempt": case.attempt,
    }
    if correction is not None:
        details["correction"] = correction
    tx.transition(
        case.case_id,
        action=action,
        from_status=from_status,
        to_status=CaseStatus.triaged,
        actor=actor,
        actor_role=actor_role,
        reason=reason,
        details=details,
        at=now,
    )
    tx.emit(
        topics.triaged,
        "case.triaged",
        CaseTriaged(
            case_id=case.case_id,
            source=case.source,
            source_ref=case.source_ref,
            dispute_type=decision.dispute_type,
            severity=decision.severity,
            channel=decision.channel,
            co_channels=list(decision.co_channels),
            tier=decision.tier,
            rule_id=decision.rule_id,
            rules_version=decision.rules_version,
            sign_for_due=decision.sign_for_due,
            mediation_due=decision.mediation_due,
            attempt=case.attempt,
            excluded_channels=list(case.excluded_channels),
            decision=decided,
            grid_code=case.grid_code,
            text=case.text,
            parties=[PartyRef.model_validate(p) for p in case.parties],
            sealed_contact=case.sealed_contact,
            review=decision.review,
            review_cues=list(decision.review_cues),
            correction=correction,
        ),
        case.case_id,
    )
    return decision


class TriageHandlers:
    """Decides and routes cases as reports, repeats and returns arrive."""

    def __init__(self, delivery: Delivery, topics: Topics, rules: RulesStore) -> None:
        self.delivery, self.topics, self.rules = delivery, topics, rules

    async def _route(
        self, tx: Tx, case: AnyCase, *, action: str, from_status: str, reason: str, now: datetime
    ) -> TriageDecision:
        return await route_case(
            tx,
            self.topics,
            self.rules,
            case,
            action=action,
            from_status=from_status,
            reason=reason,
            now=now,
        )

    async def report_received(self, env: Envelope, ev: ReportReceived) -> None:
        """A new case: decide and route it."""

        async def work(tx: Tx) -> None:
            if await find_case(tx, ev.case_id, expect_new=True) is not None:
                return
            now = utcnow()
            case = NewCase(
                case_id=ev.case_id,
                source=ev.source,
                source_ref=ev.source_ref,
                text=ev.text,
                category=ev.category,
                grid_code=ev.grid_code,
                parties=[p.model_dump() for p in ev.parties],
                sealed_contact=ev.sealed_contact,
                repeat_count=ev.repeat_count,
                updated_at=now,
            )
            await self._route(
                tx,
                case,
                action="triage",
                from_status=CaseStatus.received,
                reason="routed by rules",
                now=now,
            )
            insert_new(tx, case)

        await self.delivery.handle_once("triage.reports", env, work)

    async def report_repeated(self, env: Envelope, ev: ReportRepeated) -> None:
        """Another report joined the case: the repeat count may raise severity."""

        async def work(tx: Tx) -> None:
            case = await find_case(tx, ev.case_id)
            if case is None or ev.repeat_count <= case.repeat_count:
                return
            before = case.severity
            case.repeat_count = ev.repeat_count
            decision = decide(triage_input(case), self.rules.current, utcnow())
            if decision.severity == before:
                save(tx, case)
                return
            await self._route(
                tx,
                case,
                action="retriage",
                from_status=CaseStatus.triaged,
                reason=f"reported {ev.repeat_count} times; severity {before} → {decision.severity}",
                now=utcnow(),
            )

        await self.delivery.handle_once("triage.repeats", env, work)

    async def case_returned(self, env: Envelope, ev: CaseReturned) -> None:
        """A channel returned the case (退单): route again without it."""

        async def work(tx: Tx) -> None:
            case = await find_case(tx, ev.case_id)
            if case is None:
                return
            case.return_count = ev.return_count
            case.excluded_channels = sorted(
                set(case.excluded_channels) | set(ev.excluded_channels) | {ev.channel}
            )
            await self._route(
                tx,
                case,
                action="reroute",
                from_status=CaseStatus.returned,
                reason=f"returned by {ev.channel}: {ev.reason}",
                now=utcnow(),
            )

        await self.delivery.handle_once("triage.returns", env, work)
