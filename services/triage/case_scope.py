"""Who may read a case's decisions: the scope facts the trail carries, kept per case."""

from __future__ import annotations

from services.triage.repository import TriageCase, TriageCaseScope
from shared.contracts import TrailAppended
from shared.db import Delivery, Tx
from shared.events import Envelope
from shared.scope import CaseScope, scope_changes

CONSUMER = "triage.scope"


class ScopeProjection:
    """Projects tier, area, organisation, mediator and co-handlers from trail entries."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery

    async def trail_appended(self, env: Envelope, entry: TrailAppended) -> None:
        """Keep what the entry says about who handles the case."""
        changes = scope_changes(entry.details)
        if not changes:
            return

        async def work(tx: Tx) -> None:
            row = await tx.get(TriageCaseScope, entry.case_id)
            if row is None:
                row = TriageCaseScope(case_id=entry.case_id, co_channels=[])
            for name, value in changes.items():
                setattr(row, name, value)
            tx.session.add(row)

        await self.delivery.handle_once(CONSUMER, env, work)


def case_scope(case: TriageCase | None, row: TriageCaseScope | None) -> CaseScope:
    """The case's scope: the trail's facts first, then what triage decided itself."""
    tier = (row.tier if row else None) or (case.tier if case else None)
    return CaseScope(
        tier=tier,
        grid_code=(row.grid_code if row else None) or (case.grid_code if case else None),
        organisation_id=row.organisation_id if row else None,
        channel=(row.channel if row else None) or (case.channel if case else None),
        mediator_id=row.mediator_id if row else None,
        co_channels=tuple(row.co_channels or ()) if row else (),
    )
