"""Who may read a case's decisions: the scope facts the trail carries, kept per case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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

    In a consumer batch an entry costs no transaction of its own: it is marked seen (inbox),
    the rows of the batch's cases are read once, a new row is queued for the batch's Core
    insert and a stored one has only the changed columns set (an entry that changes nothing
    writes nothing but its inbox row, so a replay after later entries cannot undo them).
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
            if await batch.claim(CONSUMER, env.event_id):
                queued: dict[Any, list[dict[str, Any]]] = batch.rows
                await _apply(batch.memo, batch.get, queued, entry.case_id, changes)
            return

        async def work(tx: Tx) -> None:
            rows: dict[Any, list[dict[str, Any]]] = {}
            await _apply({}, tx.get, rows, entry.case_id, changes)
            for table, new in rows.items():
                tx.add_rows(table, new)

        await self.delivery.handle_once(CONSUMER, env, work)


async def _apply(
    memo: dict[str, Any],
    get: Callable[[type[Any], str], Awaitable[Any]],
    inserts: dict[Any, list[dict[str, Any]]],
    case_id: str,
    changes: dict[str, Any],
) -> None:
    """Set the changed scope facts: on a row queued in this batch, a stored row, or a new row
    queued for insert (inserts: table → rows, written by Core at the commit)."""
    new: dict[str, dict[str, Any]] = memo.setdefault(_NEW_SCOPES, {})
    queued = new.get(case_id)
    if queued is not None:
        queued.update(changes)
        return
    row = await get(TriageCaseScope, case_id)
    if row is None:
        values: dict[str, Any] = dict.fromkeys(SCOPE_COLUMNS)
        values |= {"case_id": case_id, "co_channels": []} | changes
        inserts.setdefault(TriageCaseScope, []).append(values)
        new[case_id] = values
        return
    for name, value in changes.items():
        if getattr(row, name) != value:  # a stored row in the session: flushed if changed
            setattr(row, name, value)


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
