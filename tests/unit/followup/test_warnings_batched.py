"""The warnings of a partition batch (autoflush off, reads kept by `known`) equal those of the
same entries taken one per transaction: the same warnings, cases, facts, states and events."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

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


def _events(cases: int) -> list[Any]:
    rng = random.Random(5)
    # few people and few places: parties repeat, towns rise, employers gather claims
    return sorted(
        (e for i in range(cases) for e in case_events(i, rng, people=cases // 3)),
        key=lambda e: e[1].at,
    )


async def _run(events: list[Any], batch: int) -> dict[str, Any]:
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
    try:
        await feed(rt, handlers, events, batch)
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
