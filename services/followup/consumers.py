"""Topic → handler wiring of the follow-up service."""

from __future__ import annotations

from services.followup.handlers import FollowupHandlers, LedgerHandlers
from shared.runtime import Runtime


def register(rt: Runtime, ledger: LedgerHandlers, followup: FollowupHandlers) -> None:
    """Subscribe the ledger (every trail entry) and the visit scheduler (agreements)."""
    rt.on_events(
        [rt.topics.trail],
        "followup.ledger",
        {
            "trail.appended": ledger.trail_appended,
        },
    )
    rt.on_events(
        [rt.topics.mediation],
        "followup",
        {
            "case.agreed": followup.case_agreed,
        },
    )
