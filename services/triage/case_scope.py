"""Who may read a case's decisions: the scope facts the trail carries, kept per case."""

from __future__ import annotations

from typing import Any

from services.triage.repository import SCOPE_COLUMNS, TriageCase, TriageCaseScope
from shared.contracts import TrailAppended
from shared.db import Delivery, Tx
from shared.events import Envelope
from shared.scope import CaseScope, scope_changes

CONSUMER = "triage.scope"


_NEW_SCOPES = "triage.new_scopes"  # batch memo: case id → scope row queued in this batch


class ScopeProjection:
    """Projects tier, area, organisation, mediator and co-handlers from trail entries.

    In a consumer batch the rows of the batch's cases are read once; an entry that changes
    nothing is only marked seen (no transaction of its own), a new row is inserted by Core at
    the batch's commit and a stored one has only the changed columns set.
    """

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery

    async def trail_appended(self, env: Envelope, entry: TrailAppended) -> None:
        """Keep what the entry says about who handles the case."""
        changes = scope_changes(entry.details)
        if not changes:
            return
        batch = self.delivery.current_batch()
        if batch is not None:
            known: dict[str, Any] | None = batch.memo.get(_NEW_SCOPES, {}).get(entry.case_id)
            stored = None if known is not None else await batch.get(TriageCaseScope, entry.case_id)
            if (known is not None and all(known[k] == v for k, v in changes.items())) or (
                stored is not None and all(getattr(stored, k) == v for k, v in changes.items())
            ):
                # seen (inbox), so that a replay after later entries cannot undo them
                await batch.claim(CONSUMER, env.event_id)
                return

        async def work(tx: Tx) -> None:
            queued = tx.batch.memo.get(_NEW_SCOPES, {}).get(entry.case_id) if tx.batch else None
            if queued is not None:
                queued.update(changes)
                return
            row = await tx.get(TriageCaseScope, entry.case_id)
            if row is None:
                values: dict[str, Any] = dict.fromkeys(SCOPE_COLUMNS)
                values |= {"case_id": entry.case_id, "co_channels": []} | changes
                tx.add_rows(TriageCaseScope, [values])
                if tx.batch is not None:
                    tx.batch.memo.setdefault(_NEW_SCOPES, {})[entry.case_id] = values
                return
            for name, value in changes.items():
                if getattr(row, name) != value:
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
