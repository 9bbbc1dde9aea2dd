"""The warnings of a partition batch (autoflush off, reads kept by `known`) equal those of the
same entries taken one per transaction: the same warnings, cases, facts, states and events."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from sqlalchemy import event
from sqlmodel import select

from bench.warnings_cost import case_events, feed
from services.followup.handlers import LedgerHandlers
from services.followup.main import MIGRATIONS
from services.followup.repository import TABLES
from services.followup.settings import FollowupSettings
from services.followup.warnings import thresholds_of
from services.followup.warnings.engine import WarningEngine
from services.followup.warnings.repository import (
    AreaDay,
    EmployerCase,
    PartyCase,
    WarningCaseLink,
    WarningRow,
)
from shared.bus import InMemoryBus
from shared.db import migrate
from shared.runtime import Runtime
from tests.causal import status_entry


def _events(cases: int, people: int | None = None) -> list[Any]:
    rng = random.Random(5)
    # few people and few places: parties repeat, towns rise, employers gather claims
    people = people or cases // 3
    return sorted(
        (e for i in range(cases) for e in case_events(i, rng, people=people)),
        key=lambda e: e[1].at,
    )


async def _run(
    events: list[Any], batch: int, statements: list[str] | None = None, *, alone: bool = True
) -> dict[str, Any]:
    """The warnings' rows and events after the entries, `batch` per transaction (`alone`:
    as `feed` takes it)."""
    settings = FollowupSettings(
        bus="memory",
        database_url="sqlite+aiosqlite://",
        dev_mode=True,
        warn_rising_min_cases=3,
        warn_group_open_labour=2,
    )
    rt = Runtime(settings, TABLES, MIGRATIONS, bus=InMemoryBus())
    await migrate(rt.engine, MIGRATIONS)
    handlers = LedgerHandlers(rt.delivery, [WarningEngine(rt.topics, thresholds_of(settings))])
    if statements is not None:

        @event.listens_for(rt.engine.sync_engine, "before_cursor_execute")
        def _seen(*args: Any) -> None:
            statements.append(args[2])

    try:
        await feed(rt, handlers, events, batch, alone)
        async with rt.sessions() as s:
            warnings = sorted(
                (w.key, w.status, tuple(w.case_ids), repr(sorted(w.facts.items())))
                for w in (await s.exec(select(WarningRow))).all()
            )
            links = Counter((await s.exec(select(WarningCaseLink.case_id))).all())
            parties = sorted(
                (r.hash, r.case_id, r.settled_at is not None, r.counted)
                for r in (await s.exec(select(PartyCase))).all()
            )
            days = sorted((r.area, r.day, r.cases) for r in (await s.exec(select(AreaDay))).all())
            employers = sorted(
                (r.employer_key, r.case_id, r.open)
                for r in (await s.exec(select(EmployerCase))).all()
            )
            from sqlalchemy import text

            outbox = Counter(
                r[0]
                for r in (await s.exec(text("SELECT topic FROM outbox"))).all()  # type: ignore[call-overload]
            )
    finally:
        await rt.engine.dispose()
    return {
        "warnings": warnings,
        "links": links,
        "parties": parties,
        "days": days,
        "employers": employers,
        "outbox": outbox,
    }


async def test_batched_warnings_equal_one_entry_per_transaction() -> None:
    events = _events(120)
    alone = await _run(events, 1)
    together = await _run(events, 100)
    kinds = Counter(k.split(":")[0] for k, *_ in alone["warnings"])
    # the run raises (and clears) warnings of several kinds, so the comparison means something
    assert {"repeat_party", "rising_area", "group_risk"} <= set(kinds), kinds
    assert any(status == "cleared" for _, status, *_ in alone["warnings"])
    for part in alone:
        assert together[part] == alone[part], part
    # batches that split the cases' entries differently (a case's entries across batches)
    assert await _run(events, 7) == alone


async def test_a_batch_links_its_cases_without_reading_a_warnings_links() -> None:
    # warnings active before a batch gain the batch's cases (a town keeps rising, a party keeps
    # reporting): whether a warning names a case of the batch is known from the active warnings
    # the batch read for its cases, not from a read of each warning's links (thousands for a town)
    # (each party in one case: a repeat party's warning may gain a case of an earlier batch, a
    # case received before, its party counted once the case had a tier: that one is read)
    statements: list[str] = []
    events = _events(120, people=10**6)
    together = await _run(events, 100, statements)
    assert together == await _run(events, 1)
    raised = Counter(w[0].split(":")[0] for w in together["warnings"])
    assert {"rising_area", "group_risk"} <= set(raised), raised
    assert sum(c for c in together["links"].values()) > len(together["warnings"])
    by_warning = [s for s in statements if "FROM warning_case_links WHERE" in " ".join(s.split())]
    assert by_warning == []


async def test_a_batch_of_cases_new_to_the_ledger_reads_no_warnings_naming_them() -> None:
    # at a steady rate a report's first entry is often a batch of its own: its case has no
    # ledger row yet, so no warning can name it (the engine links a case only in a transaction
    # of the case's own entries) and the batch reads none; a later entry's batch does
    statements: list[str] = []
    events = _events(40)
    one_by_one = await _run(events, 1, statements, alone=False)
    assert one_by_one == await _run(events, 1)
    naming = [s for s in statements if "FROM warning_case_links JOIN" in " ".join(s.split())]
    firsts = len({ev.case_id for _, ev in events})
    assert len(naming) == len(events) - firsts, (len(naming), len(events), firsts)


async def test_a_party_settled_long_after_its_receipt_is_seen_in_the_batch_that_settles_it() -> (
    None
):
    # a party's rows are read from the repeat and after-agreement windows only: case A, received
    # 100 days ago, settles in the same batch as the party's new case B; A's row is not settled
    # in the database yet (a batch flushes at its commit), and must still count for B
    from datetime import UTC, datetime, timedelta

    t0, party = datetime(2026, 6, 1, tzinfo=UTC), "ab" * 32
    triage = {
        "dispute_type": "neighbour",
        "severity": "low",
        "channel": "people",
        "tier": "grid",
        "grid_code": "522731-001-001-01",
    }
    early = [
        status_entry("A", "received", None, "receive", t0, party_hashes=[party]),
        status_entry("A", "triaged", "received", "triage", t0 + timedelta(hours=1), triage),
        status_entry("A", "assigned", "triaged", "assign", t0 + timedelta(hours=2)),
        status_entry("A", "accepted", "assigned", "accept", t0 + timedelta(hours=3)),
        status_entry("A", "mediating", "accepted", "note", t0 + timedelta(hours=4)),
    ]
    later = t0 + timedelta(days=100)
    late = [
        status_entry("A", "agreed", "mediating", "agree", later),
        status_entry("B", "received", None, "receive", later + timedelta(hours=1), None, [party]),
        status_entry("B", "triaged", "received", "triage", later + timedelta(hours=2), triage),
    ]
    alone = await _run(early + late, 1)
    assert any(key == "repeat_after_agreement:B:A" for key, *_ in alone["warnings"])
    assert await _run(early + late, len(early)) == alone  # the late three in one batch
