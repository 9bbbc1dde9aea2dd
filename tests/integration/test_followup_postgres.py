"""The ledger on PostgreSQL, where its SQL differs from SQLite: stats, filters, the chain
check after a raw update, and two visits racing on one case."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import select

from bench.warnings_cost import case_events, feed
from services.followup.domain import as_utc
from services.followup.handlers import LedgerHandlers
from services.followup.main import MIGRATIONS, create_app
from services.followup.repository import TABLES
from services.followup.settings import FollowupSettings
from services.followup.warnings import thresholds_of
from services.followup.warnings.engine import WarningEngine
from services.followup.warnings.repository import AreaDay, WarningCaseLink, WarningRow
from shared.bus import BATCH_CONFLICT_RETRIES, InMemoryBus, db_error_detail
from shared.clock import ManualClock
from shared.db import migrate
from shared.runtime import Runtime
from tests.unit.followup.conftest import T0, TOPICS, Ledger
from tests.unit.followup.test_dashboard import ids, populate
from tests.unit.followup.test_ledger_batched import _events, _fed


@pytest.fixture
async def pg_ledger(pg_url: str) -> AsyncIterator[Ledger]:
    bus = InMemoryBus()
    clock = ManualClock(T0 + timedelta(days=1))
    app = create_app(FollowupSettings(bus="memory", database_url=pg_url), bus=bus, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://followup") as client:
            yield Ledger(app, bus, clock, client)
    await bus.stop()


async def test_stats_and_filters_on_postgres(pg_ledger: Ledger) -> None:
    await populate(pg_ledger)
    s = (await pg_ledger.get("/v1/stats")).json()
    assert s["total"] == 7
    assert s["by_source"] == {"12345": 4, "110": 2, "grid": 1}
    assert s["mediation_success"] == {"settled": 3, "unsettled": 2, "rate": 0.6}
    assert s["on_time"] == {"agreed_with_deadline": 3, "on_time": 2, "rate": 0.6667}
    assert s["satisfaction"] == {"mean": 4.0, "responses": 2}
    assert s["settled_at_first_tier"] == {"settled": 3, "at_first_tier": 2, "rate": 0.6667}
    assert (s["backlog"], s["overdue"]) == (4, 1)
    assert await ids(pg_ledger, overdue="true") == ["f"]
    assert await ids(pg_ledger, since="2026-11-21T00:00:00Z") == ["a", "b", "f"]
    coordinator = {"tier": "town", "grid_codes": ("5227",)}
    # a town coordinator oversees the town tier and the grid tier below it (DOMAIN.md §7)
    seen = await ids(pg_ledger, role="coordinator", who=coordinator)
    assert seen == ["a", "b", "c", "e", "f"]


async def test_tampering_is_detected_on_postgres(pg_ledger: Ledger) -> None:
    await pg_ledger.life("c1", "mediating")
    assert (await pg_ledger.get("/v1/cases/c1/trail/verify")).json()["valid"] is True
    async with pg_ledger.app.state.runtime.engine.begin() as conn:
        await conn.execute(
            text(
                'UPDATE ledger_entries SET details = \'{"channel": "court"}\' '
                "WHERE case_id = 'c1' AND seq = 4"
            )
        )
    check = (await pg_ledger.get("/v1/cases/c1/trail/verify")).json()
    assert (check["valid"], check["broken_at"]) == (False, 4)


async def test_two_visits_racing_close_the_case_once(pg_ledger: Ledger) -> None:
    await pg_ledger.life("c1", "agreed")
    await pg_ledger.agree("c1", T0 + timedelta(hours=5))
    await pg_ledger.visit("c1")
    body = {"method": "phone", "honoured": True, "satisfaction": 5}
    results = await asyncio.gather(
        *(
            pg_ledger.client.post("/v1/cases/c1/visits", json=body, headers=pg_ledger.token())
            for _ in range(4)
        )
    )
    await pg_ledger.settle()
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    assert len(pg_ledger.events(TOPICS.followup, "case.closed")) == 1


async def test_aggregates_and_warnings_on_postgres(pg_ledger: Ledger) -> None:
    """The counters' upsert (ON CONFLICT, executemany), their prefix ranges (collation "C")
    and the warnings' counters: PostgreSQL's SQL."""
    from services.followup import repository as repo
    from services.followup.domain import CaseFilters
    from services.followup.reporting import repository as rrepo
    from tests.unit.followup.test_reporting import GROUPS, SCOPES, _same_series, random_run

    await random_run(pg_ledger, seed=3, cases=15)
    await random_run(pg_ledger, seed=4, cases=15, together=17)  # partition batches
    async with pg_ledger.app.state.runtime.sessions() as session:
        assert await rrepo.all_rows(session) == await rrepo.recount(session)
        for n, scope in enumerate(SCOPES):
            for filters in (CaseFilters(), CaseFilters(channel="labour", tier="town")):
                assert await rrepo.stats(session, filters, scope) == await repo.stats(
                    session, filters, scope
                ), scope
            await _same_series(session, CaseFilters(), scope, [GROUPS[n % 9]])
    # ten cases in one village on one day: rising village and town, one group-risk case
    for i in range(5):
        await pg_ledger.trail(
            f"pg{i}",
            "received",
            None,
            action="receive",
            at=T0 + timedelta(hours=i),
            details={
                "grid_code": "522731-201-001-01",
                "parties": [{"display": f"张*{j}"} for j in range(10)],
            },
        )
    warnings = (await pg_ledger.get("/v1/warnings", params={"kind": "rising_area"})).json()
    assert {w["area_code"] for w in warnings["items"]} == {"522731-201", "522731-201-001"}
    groups = (await pg_ledger.get("/v1/warnings", params={"kind": "group_risk"})).json()
    assert groups["count"] == 5
    series = (
        await pg_ledger.get(
            "/v1/stats/series",
            params={
                "from": "2026-11-20",
                "to": "2026-11-20",
                "group_by": "area",
                "level": "village",
            },
        )
    ).json()
    assert {"group": "522731-201-001", "received": 5} in [
        {"group": i["group"], "received": i["received"]} for i in series["items"]
    ]


async def test_a_batched_ledger_on_postgres_chains_and_counts_like_sqlite(pg_url: str) -> None:
    """Partition batches on PostgreSQL (entry ids from sequence blocks, case rows upserted at
    commit, two batches per case so rows are updated too) keep every chain valid, the counters
    equal to a recount, and the same projection as SQLite one entry per transaction."""
    events = _events(40)
    pg = await _fed(events, 50, url=pg_url)
    sqlite = await _fed(events, 1)
    assert len(pg["checks"]) == 40 and all(pg["checks"].values())
    assert pg["counters"] == pg["recount"]
    assert pg["places"] == sqlite["places"]

    def same(row: dict[str, Any]) -> dict[str, Any]:  # entry ids differ between databases
        return {
            k: as_utc(v) if isinstance(v, datetime) else v for k, v in row.items() if k != "version"
        }

    assert {c: same(r) for c, r in pg["cases"].items()} == {
        c: same(r) for c, r in sqlite["cases"].items()
    }


async def _warnings_instance(url: str, **thresholds: Any) -> tuple[Runtime, LedgerHandlers]:
    settings = FollowupSettings(bus="memory", database_url=url, dev_mode=True, **thresholds)
    rt = Runtime(settings, TABLES, MIGRATIONS, bus=InMemoryBus())
    await migrate(rt.engine, MIGRATIONS)
    return rt, LedgerHandlers(rt.delivery, [WarningEngine(rt.topics, thresholds_of(settings))])


async def _area_days(rt: Runtime) -> list[tuple[str, Any, int]]:
    async with rt.sessions() as s:
        return sorted((r.area, r.day, r.cases) for r in (await s.exec(select(AreaDay))).all())


async def test_two_instances_count_the_same_areas_at_once_on_postgres(pg_url: str) -> None:
    """Two followup instances (each its own partitions' cases) count new cases in the same
    towns and villages on the same days at once: every case counted, no batch failing on a key
    the other inserted first or on a deadlock (the day rows are added to, in key order, at
    commit), the same day sums as one instance taking the entries one at a time."""
    rng = random.Random(11)
    # 160 cases in 40 villages of 8 towns within two days: both instances count each town's
    # days; warnings off (the day sums are what is compared)
    events = sorted(
        (e for i in range(160) for e in case_events(i, rng, people=10**6)), key=lambda e: e[1].at
    )
    off = {"warn_rising_min_cases": 10**6, "warn_repeat_party_cases": 10**6}
    off |= {"warn_group_open_labour": 10**6, "warn_group_parties": 10**6}
    a, b = await _warnings_instance(pg_url, **off), await _warnings_instance(pg_url, **off)
    alone = await _warnings_instance("sqlite+aiosqlite://", **off)
    try:
        mine = [[e for e in events if int(e[0].case_id[-1]) % 2 == n] for n in (0, 1)]
        for part in range(0, 5):  # the cases' entries in turns, each instance's batches at once
            await asyncio.gather(
                *(
                    feed(rt, handlers, es[len(es) * part // 5 : len(es) * (part + 1) // 5], 40)
                    for (rt, handlers), es in zip((a, b), mine, strict=True)
                )
            )
        await feed(*alone, events, 1)
        both, one = await _area_days(a[0]), await _area_days(alone[0])
    finally:
        for rt, _ in (a, b, alone):
            await rt.engine.dispose()
    assert sum(n for _, _, n in one) == 2 * 160  # each case in its town and its village
    assert both == one


async def _feed_retrying(
    rt: Runtime, handlers: LedgerHandlers, events: list[Any], size: int
) -> int:
    """feed() as the bus takes batches: one that lost a write race to the other instance (a
    deadlock, a key inserted first) is tried whole again; returns the retries."""
    retries = 0
    for i in range(0, len(events), size):
        for attempt in range(BATCH_CONFLICT_RETRIES + 1):
            try:
                await feed(rt, handlers, events[i : i + size], size)
                break
            except Exception as exc:
                if attempt == BATCH_CONFLICT_RETRIES:
                    raise
                assert db_error_detail(exc).get("sqlstate") == "40P01", exc
                retries += 1
    return retries


async def test_two_instances_raise_and_update_the_same_warnings_on_postgres(
    pg_url: str,
) -> None:
    """Two instances raising and updating the same warnings at once (towns rising, parties
    and employers shared across their partitions): no batch fails on a key the other inserted
    first (a warning's active key, a link), none is replayed entry by entry, each warning is
    raised once, and a warning names every case linked to it by either instance (its cases
    are re-read under lock at commit, not overwritten)."""
    rng = random.Random(11)
    events = sorted(
        (e for i in range(160) for e in case_events(i, rng, people=40)), key=lambda e: e[1].at
    )
    on = {"warn_rising_min_cases": 3, "warn_group_open_labour": 2}
    a, b = await _warnings_instance(pg_url, **on), await _warnings_instance(pg_url, **on)
    try:
        mine = [[e for e in events if int(e[0].case_id[-1]) % 2 == n] for n in (0, 1)]
        for part in range(0, 5):
            await asyncio.gather(
                *(
                    _feed_retrying(rt, h, es[len(es) * part // 5 : len(es) * (part + 1) // 5], 40)
                    for (rt, h), es in zip((a, b), mine, strict=True)
                )
            )
        async with a[0].sessions() as s:
            warnings = (await s.exec(select(WarningRow))).all()
            links = (await s.exec(select(WarningCaseLink))).all()
            raised = (
                await s.exec(
                    text("SELECT count(*) FROM outbox WHERE value LIKE '%warning.raised%'")
                )  # type: ignore[call-overload]
            ).one()[0]
    finally:
        for rt, _ in (a, b):
            await rt.engine.dispose()
    kinds = {w.kind for w in warnings}
    assert {"repeat_party", "rising_area", "group_risk"} <= kinds, kinds
    assert raised == len(warnings)
    linked: dict[int, set[str]] = {}
    for link in links:
        linked.setdefault(link.warning_id, set()).add(link.case_id)
    for w in warnings:
        assert len(w.case_ids) < 200
        assert set(w.case_ids) == linked[w.id or 0], w.key


async def test_the_counters_leave_room_for_heap_only_updates_on_postgres(pg_url: str) -> None:
    """f6c2a8d4b1e7: a counter row is updated far more often than written; fillfactor 70
    keeps its updates on its page (no new entry in the primary key's index)."""
    from shared.db import make_engine

    engine = make_engine(pg_url)
    try:
        await migrate(engine, MIGRATIONS)
        async with engine.connect() as conn:
            options = (
                await conn.execute(
                    text("SELECT reloptions FROM pg_class WHERE relname = 'stats_counters'")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert options == ["fillfactor=70"]
