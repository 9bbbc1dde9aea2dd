"""Mediation event handlers: one transaction per partition batch (state + trail + outbox).

A new case is a plain NewCase whose row is inserted by Core at the batch's commit; stored cases
are ORM rows read once per batch (Tx.get).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.mediation.assignment import (
    SYSTEM,
    AfterCommit,
    Context,
    assign,
    find_case,
    insert_new,
    run_after_commit,
    save,
    trail_details,
)
from services.mediation.domain import TERMINAL_STATUSES, aware, next_status
from services.mediation.repository import AnyCase, NewCase
from shared.contracts import CaseClosed, CaseReopened, CaseStatus, CaseTriaged
from shared.db import Tx
from shared.events import Envelope

MANUAL_RULE_IDS = frozenset({"R0-manual"})
MANUAL_AFTER_RETURNS = 2


def _sign_for_window(ev: CaseTriaged, decided_at: datetime) -> int:
    minutes = ev.decision.get("sign_for_minutes")
    if isinstance(minutes, int) and minutes > 0:
        return minutes * 60
    return max(0, int((aware(ev.sign_for_due) - aware(decided_at)).total_seconds()))


def _apply_routing(case: AnyCase, ev: CaseTriaged, decided_at: datetime) -> None:
    """Copy triage's decision onto the case (type, severity, channel, tier, deadlines)."""
    case.dispute_type, case.severity = ev.dispute_type, ev.severity
    case.channel, case.co_channels, case.tier = ev.channel, list(ev.co_channels), ev.tier
    case.rule_id, case.attempt = ev.rule_id, ev.attempt
    case.sign_for_due, case.mediation_due = ev.sign_for_due, ev.mediation_due
    case.sign_for_window_s = _sign_for_window(ev, decided_at)
    # new deadlines: the flags show whether these are missed (notices stay once per kind)
    case.sign_for_overdue = case.mediation_overdue = False
    case.excluded_channels = sorted(set(case.excluded_channels) | set(ev.excluded_channels))
    if ev.grid_code:
        case.grid_code = ev.grid_code


class MediationHandlers:
    """Takes routed cases in, reopens broken agreements, follows closures."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _manual(self, case: AnyCase) -> bool:
        return case.rule_id in MANUAL_RULE_IDS or case.return_count >= MANUAL_AFTER_RETURNS

    async def case_triaged(self, env: Envelope, ev: CaseTriaged) -> None:
        """A routed case: assign it, re-assign it after a return, or update it after retriage."""
        after: list[AfterCommit] = []

        async def work(tx: Tx) -> None:
            now = self.ctx.clock.now()
            case = await find_case(tx, ev.case_id, expect_new=ev.attempt == 1)
            if case is None:
                new = NewCase(
                    case_id=ev.case_id,
                    status=CaseStatus.triaged,
                    source=ev.source,
                    source_ref=ev.source_ref,
                    dispute_type=ev.dispute_type,
                    severity=ev.severity,
                    channel=ev.channel,
                    tier=ev.tier,
                    rule_id=ev.rule_id,
                    first_tier=ev.tier,
                    text=ev.text,
                    parties=[p.model_dump() for p in ev.parties],
                    sealed_contact=ev.sealed_contact,
                    created_at=now,
                    updated_at=now,
                )
                _apply_routing(new, ev, now)
                after.extend(
                    await assign(
                        self.ctx,
                        tx,
                        new,
                        now=now,
                        manual=self._manual(new),
                        reason="按分流结果指派",
                    )
                )
                insert_new(tx, new)
                return
            if ev.attempt <= case.attempt or case.status in TERMINAL_STATUSES:
                return  # an older decision, or the case has left mediation
            if case.status in (CaseStatus.returned, CaseStatus.triaged):
                _apply_routing(case, ev, now)
                case.status = CaseStatus.triaged  # triage wrote returned → triaged
                after.extend(
                    await assign(
                        self.ctx,
                        tx,
                        case,
                        now=now,
                        manual=self._manual(case),
                        reason="退单后重新分流",
                    )
                )
                return
            await self._retriage(tx, case, ev, now, now, after)

        async def notify() -> None:
            await run_after_commit(after)

        await self.ctx.delivery.handle_once("mediation.triaged", env, work)
        await self.ctx.delivery.after_commit(notify)

    async def _retriage(
        self,
        tx: Tx,
        case: AnyCase,
        ev: CaseTriaged,
        decided_at: datetime,
        now: datetime,
        after: list[AfterCommit],
    ) -> None:
        """Severity was raised after routing (repeat reports), or a coordinator corrected it."""
        before = (case.severity, case.tier)
        moved = (ev.channel, ev.tier) != (case.channel, case.tier)
        corrected = f"（协调员更正：{ev.correction.get('note', '')}）" if ev.correction else ""
        if case.status == CaseStatus.assigned and moved:
            _apply_routing(case, ev, decided_at)
            after.extend(
                await assign(
                    self.ctx,
                    tx,
                    case,
                    now=now,
                    action="reassign",
                    manual=self._manual(case),
                    reason=f"重新研判：{before[0]} → {ev.severity}{corrected}",
                )
            )
            return
        # Signed for already: only severity, tier and deadlines change.
        case.severity, case.tier, case.attempt = ev.severity, ev.tier, ev.attempt
        case.dispute_type = ev.dispute_type
        case.mediation_due = ev.mediation_due
        if case.status == CaseStatus.assigned:
            case.sign_for_due = ev.sign_for_due
        case.updated_at = now
        save(tx, case)
        tx.transition(
            case.case_id,
            action="retriage",
            from_status=case.status,
            to_status=case.status,
            actor=SYSTEM,
            reason=f"重新研判：严重程度{before[0]} → {ev.severity}，"
            f"层级{before[1]} → {ev.tier}{corrected}",
            details=trail_details(case, attempt=ev.attempt),
            at=now,
        )

    async def case_reopened(self, env: Envelope, ev: CaseReopened) -> None:
        """A follow-up visit found the agreement broken: mediation resumes."""

        async def work(tx: Tx) -> None:
            now = self.ctx.clock.now()
            case = await find_case(tx, ev.case_id)
            if case is None or case.status not in (
                CaseStatus.agreed,
                CaseStatus.follow_up,
                CaseStatus.reopened,
            ):
                return
            to = next_status("reopen", CaseStatus.reopened)
            case.status, case.updated_at = to, now
            case.mediation_due = now + timedelta(days=self.ctx.settings.reopen_mediation_days)
            case.mediation_overdue = False
            save(tx, case)
            tx.transition(
                case.case_id,
                action="resume",
                from_status=CaseStatus.reopened,
                to_status=to,
                actor=SYSTEM,
                reason=f"协议未履行，恢复调解：{ev.reason}",
                details=trail_details(case, visit_id=ev.visit_id),
                at=now,
            )

        await self.ctx.delivery.handle_once("mediation.reopened", env, work)

    async def case_closed(self, env: Envelope, ev: CaseClosed) -> None:
        """Follow-up closed the loop: the case leaves the mediator's work list."""

        async def work(tx: Tx) -> None:
            case = await find_case(tx, ev.case_id)
            if case is None or case.status in TERMINAL_STATUSES:
                return
            case.status, case.outcome = CaseStatus.closed, ev.outcome[:40]
            case.updated_at = self.ctx.clock.now()
            save(tx, case)

        await self.ctx.delivery.handle_once("mediation.closed", env, work)
