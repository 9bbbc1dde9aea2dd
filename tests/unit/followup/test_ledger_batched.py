"""The ledger of a partition batch (case rows read once and upserted at commit, entry rows as
plain inserts) equals the ledger of the same entries taken one per transaction; a duplicate in
a batch is chained once; a batch that fails half-way keeps nothing, and its replay chains all."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlmodel import col, select

from bench.warnings_cost import feed, pipeline_events
from services.followup.handlers import LedgerHandlers, LedgerHook
from services.followup.ledger import CaseProjection, verify_chain
from services.followup.main import MIGRATIONS
from services.followup.places.repository import CasePlace, PlacesHook
from services.followup.reporting.repository import StatsAggregates, all_rows, recount
from services.followup.repository import TABLES, LedgerCase, LedgerEntry, entries_of
from services.followup.settings import FollowupSettings
from services.followup.warnings import thresholds_of
from services.followup.warnings.engine import WarningEngine
from shared.bus import InMemoryBus
from shared.contracts import TrailAppended
from shared.db import Tx, migrate
from shared.pii import PiiCipher
from shared.runtime import Runtime

SETTINGS = FollowupSettings(bus="memory", database_url="sqlite+aiosqlite://", dev_mode=True)


def _events(cases: int = 60) -> list[Any]:
    cipher = PiiCipher(SETTINGS.pii_key, SETTINGS.pii_previous_keys)
    return pipeline_events(cases, random.Random(3), cases, cipher)


class Boom(Exception):
    """A hook failing on one entry."""


class FailOn:
    """A hook that fails once on one entry (then lets the replay through)."""

    def __init__(self, entry: TrailAppended) -> None:
        self.entry, self.fired = entry, False

    async def after_entry(
        self, tx: Tx, ev: TrailAppended, before: CaseProjection | None, after: CaseProjection
    ) -> None:
        del tx, before, after
        if not self.fired and (ev.case_id, ev.action) == (self.entry.case_id, self.entry.action):
            self.fired = True
            raise Boom(ev.case_id)


async def _runtime(
    extra: list[LedgerHook] | None = None, url: str | None = None
) -> tuple[Runtime, LedgerHandlers]:
    settings = SETTINGS if url is None else SETTINGS.model_copy(update={"database_url": url})
    rt = Runtime(settings, TABLES, MIGRATIONS, bus=InMemoryBus())
    await migrate(rt.engine, MIGRATIONS)
    hooks: list[LedgerHook] = [
        StatsAggregates(),
        PlacesHook(rt.cipher),
        WarningEngine(rt.topics, thresholds_of(SETTINGS)),
        *(extra or []),
    ]
    return rt, LedgerHandlers(rt.delivery, hooks)


async def _state(rt: Runtime) -> dict[str, Any]:
    async with rt.sessions() as s:
        cases = {
            c.case_id: c.model_dump()
            for c in (await s.exec(select(LedgerCase).order_by(col(LedgerCase.case_id)))).all()
        }
        entries = [
            e.model_dump()
            for e in (await s.exec(select(LedgerEntry).order_by(col(LedgerEntry.id)))).all()
        ]
        checks = {}
        for case_id, c in cases.items():
            stored = [e.stored() for e in await entries_of(s, case_id)]
            checks[case_id] = verify_chain(stored, c["last_hash"], c["entries"]).valid
        places = sorted(
            (p.case_id, p.day, p.lat_coarse, p.lon_coarse)
            for p in (await s.exec(select(CasePlace))).all()
        )
        counters, recounted = await all_rows(s), await recount(s)
    return {
        "cases": cases,
        "entries": entries,
        "checks": checks,
        "places": places,
        "counters": counters,
        "recount": recounted,
    }


async def _fed(events: list[Any], batch: int, url: str | None = None) -> dict[str, Any]:
    rt, handlers = await _runtime(url=url)
    try:
        await feed(rt, handlers, events, batch)
        return await _state(rt)
    finally:
        await rt.engine.dispose()


async def test_a_batched_ledger_equals_one_entry_per_transaction() -> None:
    events = _events()
    alone, together = await _fed(events, 1), await _fed(events, 40)
    assert len(alone["cases"]) == 60 and len(alone["entries"]) == 180
    assert all(alone["checks"].values()) and all(together["checks"].values())
    assert {c["status"] for c in together["cases"].values()} == {"assigned"}
    assert together["counters"] == together["recount"]
    assert len(together["places"]) == 60
    for part in alone:
        assert together[part] == alone[part], part


async def test_a_duplicate_in_a_batch_and_a_redelivered_entry_are_chained_once() -> None:
    events = _events(10)
    rt, handlers = await _runtime()
    try:
        await feed(rt, handlers, events[:20], 20)
        # the batch holds one entry twice, and an entry the ledger chained in the batch before
        again = [events[5], *events[20:25], events[22], *events[25:]]
        async with rt.delivery.batch([env for env, _ in again]):
            for env, ev in again:
                await handlers.trail_appended(env, ev)
        state = await _state(rt)
    finally:
        await rt.engine.dispose()
    assert len(state["entries"]) == 30
    assert len({e["event_id"] for e in state["entries"]}) == 30
    assert all(state["checks"].values()) and len(state["checks"]) == 10
    assert [c["entries"] for c in state["cases"].values()] == [3] * 10
    assert state["counters"] == state["recount"]


async def test_a_batch_failing_half_way_keeps_nothing_and_its_replay_chains_everything() -> None:
    events = _events(20)
    first, rest = events[:30], events[30:]
    fail = FailOn(rest[len(rest) // 2][1])
    rt, handlers = await _runtime([fail])
    try:
        await feed(rt, handlers, first, 30)
        before = await _state(rt)
        with pytest.raises(Boom):
            await feed(rt, handlers, rest, len(rest))
        assert fail.fired
        assert await _state(rt) == before  # nothing of the failed batch was kept
        await feed(rt, handlers, rest, 1)  # the bus replays the batch one entry at a time
        after = await _state(rt)
    finally:
        await rt.engine.dispose()
    # the same ledger in the same order; the ids the failed batch gave out stay unused
    assert _without_ids(after) == _without_ids(await _fed(events, 1))


def _without_ids(state: dict[str, Any]) -> dict[str, Any]:
    out = dict(state)
    out["entries"] = [{k: v for k, v in e.items() if k != "id"} for e in state["entries"]]
    versions = sorted(c["version"] for c in state["cases"].values())
    out["cases"] = {
        case_id: {**c, "version": versions.index(c["version"])}
        for case_id, c in state["cases"].items()
    }
    return out
