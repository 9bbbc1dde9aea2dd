"""Topic → handler wiring of the triage service."""

from __future__ import annotations

from services.triage.case_scope import ScopeProjection
from services.triage.handlers import TriageHandlers
from shared.runtime import Runtime


def register(rt: Runtime, h: TriageHandlers) -> None:
    """Subscribe the triage consumer group, and the trail for who may read a case."""
    scope = ScopeProjection(rt.delivery)
    rt.on_events([rt.topics.trail], "triage.scope", {"trail.appended": scope.trail_appended})
    rt.on_events(
        [rt.topics.reports, rt.topics.mediation],
        "triage",
        {
            "report.received": h.report_received,
            "report.repeated": h.report_repeated,
            "case.returned": h.case_returned,
        },
    )
