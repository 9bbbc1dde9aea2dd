"""Topic → handler wiring of the mediation service."""

from __future__ import annotations

from services.mediation.handlers import MediationHandlers
from shared.runtime import Runtime


def register(rt: Runtime, h: MediationHandlers) -> None:
    """Subscribe the mediation consumer group."""
    rt.on_events(
        [rt.topics.triaged, rt.topics.followup],
        "mediation",
        {
            "case.triaged": h.case_triaged,
            "case.reopened": h.case_reopened,
            "case.closed": h.case_closed,
        },
    )
