"""Topic → handler wiring of the mediation service."""

from __future__ import annotations

from services.mediation.handlers import MediationHandlers
from shared.runtime import Runtime


def register(rt: Runtime, h: MediationHandlers) -> None:
    """Subscribe the mediation consumer groups: routed cases, and follow-up's outcomes."""
    rt.on_events([rt.topics.triaged], "mediation", {"case.triaged": h.case_triaged})
    rt.on_events(
        [rt.topics.followup],
        "mediation-followup",
        {"case.reopened": h.case_reopened, "case.closed": h.case_closed},
    )
