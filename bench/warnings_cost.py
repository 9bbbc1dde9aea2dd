"""What the early warnings and the stats counters cost per ledger event.

The ledger's handler is driven directly (no broker, no HTTP) with the same trail entries, each
variant on a fresh SQLite database in memory: the ledger alone, with the counters, with the
warnings, with every hook — taken as the consumer takes them, partition batches of `--batch`
entries (default 100) in one transaction each (Delivery.batch), the cases' entries interleaved
in time order; and every hook once more one entry per transaction (the consumer's replay path).
CPU time, not wall time: the figure is the hooks' own work. Cases arrive in rounds of
`cases_per_batch`, so a growing history shows whether the cost per event stays flat (it should:
no hook scans the ledger). Three rounds in turn, each variant keeping its best. Nothing is
asserted.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.followup.handlers import LedgerHandlers, LedgerHook
from services.followup.main import MIGRATIONS
from services.followup.places.repository import PlacesHook
from services.followup.reporting.repository import StatsAggregates
from services.followup.repository import TABLES
from services.followup.settings import FollowupSettings
from services.followup.warnings import thresholds_of
from services.followup.warnings.engine import WarningEngine
from shared.bus import InMemoryBus
from shared.contracts import REGISTRY, TrailAppended
from shared.db import migrate
from shared.events import Envelope
from shared.runtime import Runtime

T0 = datetime(2026, 9, 1, tzinfo=UTC)
VILLAGES = [f"522731-{t:03d}-{v:03d}-01" for t in range(1, 9) for v in range(1, 6)]
COMPANIES = [f"某某{i}号建筑有限公司" for i in range(20)]


def case_events(i: int, rng: random.Random, people: int) -> list[tuple[Envelope, TrailAppended]]:
    """The trail of one plausible case: received … agreed/closed or still open."""
    case_id = f"bench-{i:07d}"
    at = T0 + timedelta(minutes=i * 7 + rng.randint(0, 5))
    labour = rng.random() < 0.15
    parties: list[dict[str, Any]] = [{"role": "applicant", "kind": "person", "display": "王*"}]
    if labour:
        parties.append(
            {"role": "respondent", "kind": "organisation", "display": rng.choice(COMPANIES)}
        )
    hashes = [f"{rng.randrange(people):064x}"]
    grid = rng.choice(VILLAGES)
    tier = rng.choice(("grid", "grid", "town", "county"))
    steps: list[tuple[str | None, str, str, dict[str, Any], list[str]]] = [
        (None, "received", "receive", {"grid_code": grid, "parties": parties}, hashes),
        (
            "received",
            "triaged",
            "triage",
            {
                "dispute_type": "labour" if labour else rng.choice(("neighbour", "land")),
                "severity": rng.choice(("low", "medium", "high")),
                "channel": "labour" if labour else "people",
                "tier": tier,
                "grid_code": grid,
                "deadlines": {
                    "sign_for_due": (at + timedelta(hours=24)).isoformat(),
                    "mediation_due": (at + timedelta(days=30)).isoformat(),
                },
            },
            [],
        ),
        ("triaged", "assigned", "assign", {"organisation_id": f"org-{tier}"}, []),
        ("assigned", "accepted", "accept", {}, []),
        ("accepted", "mediating", "note", {}, []),
    ]
    if rng.random() < 0.6:
        steps.append(("mediating", "agreed", "agree", {}, []))
        steps.append(("agreed", "follow_up", "follow_up", {}, []))
        if rng.random() < 0.8:
            steps.append(("follow_up", "closed", "close", {"satisfaction": rng.randint(3, 5)}, []))
    out = []
    for n, (frm, to, action, details, party_hashes) in enumerate(steps):
        ev = TrailAppended(
            case_id=case_id,
            at=at + timedelta(hours=n * 6),
            actor="system:bench",
            action=action,
            from_status=frm,
            to_status=to,
            details=details,
            party_hashes=party_hashes,
        )
        env = REGISTRY.event(ev, event_type="trail.appended", producer="bench", case_id=case_id)
        out.append((env, ev))
    return out


async def feed(
    rt: Runtime,
    handlers: LedgerHandlers,
    events: list[tuple[Envelope, TrailAppended]],
    batch_size: int,
) -> None:
    """Hand the entries to the ledger as its consumer would: partition batches of `batch_size`,
    one transaction each (1: one entry per transaction, the replay path)."""
    for i in range(0, len(events), batch_size):
        part = events[i : i + batch_size]
        if batch_size == 1:
            await handlers.trail_appended(*part[0])
            continue
        async with rt.delivery.batch([env for env, _ in part]):
            for env, ev in part:
                await handlers.trail_appended(env, ev)


async def _variant(
    name: str,
    workdir: Path,
    batches: list[list[tuple[Envelope, TrailAppended]]],
    batch_size: int = 1,
) -> dict[str, Any]:
    # SQLite in memory: the figure is the hooks' own work, not the disk's fsync
    settings = FollowupSettings(bus="memory", database_url="sqlite+aiosqlite://", dev_mode=True)
    rt = Runtime(settings, TABLES, MIGRATIONS, bus=InMemoryBus())
    await migrate(rt.engine, MIGRATIONS)
    hooks: list[LedgerHook] = []
    if name.startswith(("aggregates", "all hooks")):
        hooks.append(StatsAggregates())
    if name.startswith("all hooks"):
        hooks.append(PlacesHook(rt.cipher))
    if name.startswith(("warnings", "all hooks")):
        hooks.append(WarningEngine(rt.topics, thresholds_of(settings)))
    handlers = LedgerHandlers(rt.delivery, hooks)
    per_batch = []
    try:
        for batch in batches:
            # CPU time of the process (every thread): on a shared machine the wall
            # clock mostly measures the neighbours
            t0 = time.process_time()
            await feed(rt, handlers, batch, batch_size)
            per_batch.append((time.process_time() - t0) / len(batch) * 1e6)
        async with rt.sessions() as s:
            from sqlmodel import func, select

            from services.followup.warnings.repository import WarningRow

            warnings = (await s.exec(select(func.count()).select_from(WarningRow))).one()
    finally:
        await rt.engine.dispose()
    return {
        "us_per_event_by_batch": [round(x) for x in per_batch],
        "us_per_event": round(sum(per_batch) / len(per_batch)),
        "warnings_raised": int(warnings),
    }


# name → entries per transaction (0: the run's --batch)
VARIANTS = {
    "ledger only": 0,
    "aggregates": 0,
    "warnings": 0,
    "all hooks": 0,
    "all hooks, one entry per transaction": 1,
}


def run(
    cases_per_batch: int = 200,
    batches: int = 3,
    seed: int = 7,
    rounds: int = 3,
    batch_size: int = 100,
) -> dict[str, Any]:
    """Time the ledger handler with and without the hooks; CPU µs per event.

    The variants run in turn, `rounds` times, and each keeps its best round (per batch): on a
    shared machine the neighbours only ever add time.
    """
    rng = random.Random(seed)
    people = cases_per_batch * batches  # most people appear once, some two or three times
    events = [
        sorted(  # the trail's order: the cases' entries interleaved in time
            (
                e
                for i in range(b * cases_per_batch, (b + 1) * cases_per_batch)
                for e in case_events(i, rng, people)
            ),
            key=lambda e: e[1].at,
        )
        for b in range(batches)
    ]
    out: dict[str, Any] = {
        "cases": cases_per_batch * batches,
        "events": sum(len(b) for b in events),
        "rounds": rounds,
        "entries_per_transaction": batch_size,
        "variants": {},
    }
    with tempfile.TemporaryDirectory(prefix="fq-bench-warnings-") as d:
        for _ in range(rounds):
            for name, size in VARIANTS.items():
                got = asyncio.run(_variant(name, Path(d), events, size or batch_size))
                best = out["variants"].setdefault(name, got)
                best["us_per_event_by_batch"] = [
                    min(x, y)
                    for x, y in zip(
                        best["us_per_event_by_batch"], got["us_per_event_by_batch"], strict=True
                    )
                ]
    for v in out["variants"].values():
        v["us_per_event"] = round(sum(v["us_per_event_by_batch"]) / batches)
    base = out["variants"]["ledger only"]["us_per_event"]
    for v in out["variants"].values():
        v["extra_us_per_event"] = v["us_per_event"] - base
    return out


if __name__ == "__main__":
    import sys

    # python -m bench.warnings_cost [CASES_PER_ROUND] [--batch N]
    args = sys.argv[1:]
    size = int(args[args.index("--batch") + 1]) if "--batch" in args else 100
    if "--batch" in args:
        del args[args.index("--batch") : args.index("--batch") + 2]
    print(json.dumps(run(int(args[0]) if args else 200, batch_size=size), indent=2))
