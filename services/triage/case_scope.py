"""Who may read a case's decisions: the scope facts the trail carries, kept per case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.triage.repository import SCOPE_COLUMNS, TriageCase, TriageCaseScope, gate_epoch
from shared.contracts import TrailAppended
from shared.db import CausalGate, Delivery, Tx
from shared.events import Envelope
from shared.scope import CaseScope, scope_changes

CONSUMER = "triage.scope"


_NEW_SCOPES = "triage.new_scopes"  # batch memo: case id → scope row queued in this batch


class ScopeProjection:
    """Projects tier, area, organisation, mediator and co-handlers from trail entries.

    The entries are applied in causal order (shared.db.CausalGate): one that arrives before an
    entry it follows (the trail topic carries every service's entries, each sent by its own
    relay) waits, so a late older entry never undoes a newer tier or organisation. In a
    consumer batch an entry costs no transaction of its own: it is marked seen (inbox), the
    rows of the batch's cases are read once, a new row is queued for the batch's Core insert
    and a stored one has only the changed columns set.
    """

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.gate = CausalGate(
            delivery, CONSUMER, epoch=lambda session: gate_epoch(session, CONSUMER)
        )

    async def trail_appended(self, env: Envelope, entry: TrailAppended) -> None:
        """Keep what the entry says about who handles the case (once its causes are kept)."""
        await self.gate.handle(env, entry, self._apply)

    async def _apply(self, tx: Tx, env: Envelope, entry: TrailAppended) -> None:
        changes = scope_changes(entry.details)
        if not changes:
            return
        rows: dict[Any, list[dict[str, Any]]] = {}
        await _apply(tx.memo, tx.get, rows, entry.case_id, changes)
        for table, new in rows.items():
            tx.add_rows(table, new)


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
