"""Triage handlers: one transaction each (state + decision + trail + outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.triage.domain import Party, TriageDecision, TriageInput, decide
from services.triage.repository import TriageCase, TriageDecisionRow
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
from shared.db import Delivery, Tx
from shared.events import Envelope, utcnow
from shared.topics import Topics

ACTOR = "system:triage"


def triage_input(case: TriageCase) -> TriageInput:
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
    )


def decision_details(d: TriageDecision) -> dict[str, Any]:
    """The non-personal summary of a decision that the trail carries."""
    out = d.to_dict()
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
        )
    }


class TriageHandlers:
    """Decides and routes cases as reports, repeats and returns arrive."""

    def __init__(self, delivery: Delivery, topics: Topics, rules: RulesStore) -> None:
        self.delivery, self.topics, self.rules = delivery, topics, rules

    async def _route(
        self, tx: Tx, case: TriageCase, *, action: str, from_status: str, reason: str, now: datetime
    ) -> TriageDecision:
        decision = decide(triage_input(case), self.rules.current, now)
        metrics.triage_decided(
            decision.rule_id, decision.severity, bool(getattr(decision, "review", False))
        )
        case.attempt += 1
        case.dispute_type, case.severity = decision.dispute_type, decision.severity
        case.channel, case.tier, case.updated_at = decision.channel, decision.tier, now
        tx.session.add(case)
        tx.session.add(
            TriageDecisionRow(
                case_id=case.case_id,
                attempt=case.attempt,
                rules_version=decision.rules_version,
                decision=decision.to_dict(),
                decided_at=now,
            )
        )
        tx.transition(
            case.case_id,
            action=action,
            from_status=from_status,
            to_status=CaseStatus.triaged,
            actor=ACTOR,
            reason=reason,
            details=decision_details(decision)
            | {
                "source": case.source,
                "source_ref": case.source_ref,
                "grid_code": case.grid_code,
                "attempt": case.attempt,
            },
            at=now,
        )
        tx.emit(
            self.topics.triaged,
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
                decision=decision.to_dict(),
                grid_code=case.grid_code,
                text=case.text,
                parties=[PartyRef.model_validate(p) for p in case.parties],
                sealed_contact=case.sealed_contact,
            ),
            case.case_id,
        )
        return decision

    async def report_received(self, env: Envelope, ev: ReportReceived) -> None:
        """A new case: decide and route it."""

        async def work(tx: Tx) -> None:
            if await tx.session.get(TriageCase, ev.case_id) is not None:
                return
            now = utcnow()
            case = TriageCase(
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

        await self.delivery.handle_once("triage.reports", env, work)

    async def report_repeated(self, env: Envelope, ev: ReportRepeated) -> None:
        """Another report joined the case: the repeat count may raise severity."""

        async def work(tx: Tx) -> None:
            case = await tx.session.get(TriageCase, ev.case_id)
            if case is None or ev.repeat_count <= case.repeat_count:
                return
            before = case.severity
            case.repeat_count = ev.repeat_count
            decision = decide(triage_input(case), self.rules.current, utcnow())
            if decision.severity == before:
                tx.session.add(case)
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
            case = await tx.session.get(TriageCase, ev.case_id)
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
