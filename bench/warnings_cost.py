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
import gc
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
from shared.pii import PiiCipher
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


def pipeline_events(
    cases: int, rng: random.Random, people: int, cipher: PiiCipher, start: int = 0
) -> list[tuple[Envelope, TrailAppended]]:
    """The trail of the end-to-end bench's cases: receive (intake), triage, assign (mediation),
    each following the one before (causal order), with the details, party hashes and sealed
    place the services write; cases a tenth of a second apart, their entries interleaved."""
    chains: list[list[tuple[datetime, TrailAppended]]] = []
    for i in range(start, start + cases):
        case_id = f"pipe-{i:07d}"
        at = T0 + timedelta(seconds=i / 10)
        labour = rng.random() < 0.15
        grid = rng.choice(VILLAGES)
        tier = rng.choice(("grid", "grid", "town", "county"))
        source = rng.choice(("110", "12345", "grid"))
        parties: list[dict[str, Any]] = [
            {"role": "applicant", "kind": "person", "display": "王*"},
            {"role": "respondent", "kind": "person", "display": "李*"},
        ]
        if labour:
            parties[1] = {"role": "respondent", "kind": "organisation", "display": COMPANIES[0]}
        dtype = "labour" if labour else rng.choice(("neighbour", "land", "family"))
        channel = "labour" if labour else "people"
        sign_for, due = at + timedelta(hours=24), at + timedelta(days=30)
        ref = f"{source}-{i:08d}"
        common = {"source": source, "source_ref": ref, "grid_code": grid}
        receive = {
            **common,
            "report_id": f"r-{i:08d}",
            "via": rng.choice(("http", "kafka")),
            "category": "dispute",
            "parties": parties,
        }
        triage = {
            **common,
            "dispute_type": dtype,
            "severity": rng.choice(("low", "medium", "high")),
            "channel": channel,
            "co_channels": [],
            "tier": tier,
            "rule_id": "r-default",
            "rules_version": "v3",
            "deadlines": {"sign_for_due": sign_for.isoformat(), "mediation_due": due.isoformat()},
            "reasons": ["keyword match"],
            "review": False,
            "review_cues": [],
            "attempt": 1,
        }
        assign = {
            **common,
            "dispute_type": dtype,
            "severity": triage["severity"],
            "channel": channel,
            "tier": tier,
            "organisation_id": f"org-{tier}-{rng.randrange(5)}",
            "mediator_id": None,
            "sign_for_due": sign_for.isoformat(),
            "mediation_due": due.isoformat(),
            "organisation_kind": "committee",
            "queued": True,
        }
        place = cipher.seal({"lat": 26.5 + rng.random(), "lon": 107.5 + rng.random()})
        steps = [
            (None, "received", "receive", receive, "intake", 0.0),
            ("received", "triaged", "triage", triage, "triage", 0.6),
            ("triaged", "assigned", "assign", assign, "mediation", 0.9),
        ]
        chain = []
        for n, (frm, to, action, details, actor, lag) in enumerate(steps):
            ev = TrailAppended(
                case_id=case_id,
                at=at + timedelta(seconds=lag),
                actor=f"system:{actor}",
                action=action,
                from_status=frm,
                to_status=to,
                reason=f"{action} by the bench",
                details=details,
                # new people each (as the e2e bench's reports): few warnings, as there
                party_hashes=[f"{rng.randrange(people * 1000):064x}" for _ in range(2)]
                if n == 0
                else [],
                sealed_location=place if n == 0 else None,
                seq=n + 1,
            )
            chain.append((ev.at, ev))
        chains.append(chain)
    out = []
    for chain in chains:
        prev: str | None = None
        for _, ev in chain:
            if prev is not None:
                ev.follows = [prev]
            env = REGISTRY.event(
                ev, event_type="trail.appended", producer="bench", case_id=ev.case_id
            )
            prev = env.event_id
            out.append((env, ev))
    return sorted(out, key=lambda e: e[1].at)


async def feed(
    rt: Runtime,
    handlers: LedgerHandlers,
    events: list[tuple[Envelope, TrailAppended]],
    batch_size: int,
    alone: bool = True,
) -> None:
    """Hand the entries to the ledger as its consumer would: partition batches of `batch_size`,
    one transaction each (1 and `alone`: one entry per transaction, the replay path; 1 and not
    `alone`: batches of one, as the consumer hands them at a steady rate)."""
    for i in range(0, len(events), batch_size):
        part = events[i : i + batch_size]
        if batch_size == 1 and alone:
            await handlers.trail_appended(*part[0])
            continue
        async with rt.delivery.batch([env for env, _ in part]):
            for env, ev in part:
                await handlers.trail_appended(env, ev)


async def _ledger(name: str) -> tuple[Runtime, LedgerHandlers]:
    """A fresh ledger with the hooks a variant's name asks for ("all hooks": every one)."""
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
    return rt, LedgerHandlers(rt.delivery, hooks)


async def _variant(
    name: str,
    workdir: Path,
    batches: list[list[tuple[Envelope, TrailAppended]]],
    batch_size: int = 1,
) -> dict[str, Any]:
    rt, handlers = await _ledger(name)
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


# the scanner's clock against the pipeline cases (received at T0 + i/10 s, sign-for due 24 h
# later): nothing close yet; every sign-for newly close (a quarter of the window left); the
# next scan a minute on, every warning standing
SCANS = {
    "nothing due": timedelta(hours=1),
    "all newly due": timedelta(hours=20),
    "all standing": timedelta(hours=20, minutes=1),
}


async def _scan(cases: int, seed: int) -> dict[str, Any]:
    rt, handlers = await _ledger("all hooks")
    [engine] = [h for h in handlers.hooks if isinstance(h, WarningEngine)]
    out: dict[str, Any] = {"open_cases": cases}
    try:
        await feed(rt, handlers, pipeline_events(cases, random.Random(seed), cases, rt.cipher), 100)
        for name, after in SCANS.items():
            gc.collect()  # the garbage of what came before is not the scan's
            t0 = time.process_time()
            changes = await engine.scan(rt.delivery, T0 + after)
            out[name] = {"ms": round((time.process_time() - t0) * 1000, 1), "changes": changes}
    finally:
        await rt.engine.dispose()
    return out


def scan_cost(cases: int = 3000, seed: int = 7) -> dict[str, Any]:
    """CPU of one warning scan (every minute in followup) over `cases` open cases, in the
    three states of SCANS: its cost grows with the cases whose deadline is newly close, not
    with the open cases."""
    return asyncio.run(_scan(cases, seed))


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
    shape: str = "lifecycle",
    variants: list[str] | None = None,
) -> dict[str, Any]:
    """Time the ledger handler with and without the hooks; CPU µs per event.

    `shape`: "lifecycle" (cases of 5–8 entries over days, some agreed and closed) or
    "pipeline" (the end-to-end bench's cases: receive, triage, assign within a second, each
    following the one before, with party hashes and a sealed place). The variants (all, or
    those named) run in turn, `rounds` times, and each keeps its best round (per batch): on a
    shared machine the neighbours only ever add time.
    """
    rng = random.Random(seed)
    people = cases_per_batch * batches  # most people appear once, some two or three times
    if shape == "pipeline":
        settings = FollowupSettings(bus="memory", database_url="sqlite+aiosqlite://", dev_mode=True)
        cipher = PiiCipher(settings.pii_key, settings.pii_previous_keys)
        events = [
            pipeline_events(cases_per_batch, rng, people, cipher, b * cases_per_batch)
            for b in range(batches)
        ]
    else:
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
    chosen = {n: v for n, v in VARIANTS.items() if not variants or n in variants}
    out: dict[str, Any] = {
        "shape": shape,
        "cases": cases_per_batch * batches,
        "events": sum(len(b) for b in events),
        "rounds": rounds,
        "entries_per_transaction": batch_size,
        "variants": {},
    }
    with tempfile.TemporaryDirectory(prefix="fq-bench-warnings-") as d:
        for _ in range(rounds):
            for name, size in chosen.items():
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
    base = out["variants"].get("ledger only", {}).get("us_per_event")
    for v in out["variants"].values():
        if base is not None:
            v["extra_us_per_event"] = v["us_per_event"] - base
    if shape == "pipeline":  # three entries per case
        for v in out["variants"].values():
            v["ms_per_case"] = round(v["us_per_event"] * 3 / 1000, 2)
    out["scan"] = scan_cost(cases_per_batch * batches * 5, seed)
    return out


def main(argv: list[str]) -> None:
    """python -m bench.warnings_cost [CASES_PER_ROUND] [--batch N] [--rounds N]
    [--shape lifecycle|pipeline] [--variants 'ledger only,all hooks']"""
    args = list(argv)
    opts: dict[str, str] = {}
    for flag in ("--batch", "--rounds", "--shape", "--variants"):
        if flag in args:
            i = args.index(flag)
            opts[flag] = args[i + 1]
            del args[i : i + 2]
    got = run(
        int(args[0]) if args else 200,
        batch_size=int(opts.get("--batch", 100)),
        rounds=int(opts.get("--rounds", 3)),
        shape=opts.get("--shape", "lifecycle"),
        variants=opts["--variants"].split(",") if "--variants" in opts else None,
    )
    print(json.dumps(got, indent=2))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
