"""Read side: a million cases in the follow-up ledger, then dashboard queries timed over HTTP.

Rows go straight into a fresh follow-up SQLite database (its own migrations, its own table
definitions and column types, sqlite3 executemany), never through the API or the bus.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import percentile
from bench.stack import Stack
from shared.contracts import Channel, DisputeType, Severity, Source, Tier

STATUSES = (
    ("assigned", 8),
    ("accepted", 6),
    ("mediating", 10),
    ("agreed", 5),
    ("follow_up", 8),
    ("closed", 50),
    ("failed", 2),
    ("escalated", 2),
    ("transferred", 3),
    ("returned", 1),
    ("triaged", 3),
    ("received", 2),
)
CHANNELS: tuple[str, ...] = tuple(Channel)
TIERS: tuple[str, ...] = tuple(Tier)
SEVERITIES: tuple[str, ...] = tuple(Severity)
TYPES: tuple[str, ...] = tuple(DisputeType)
SOURCES: tuple[str, ...] = tuple(Source)
GRIDS = ("522731", "522731001", "522731002", "522731001001", "522731001002")
QUERIES: dict[str, tuple[str, dict[str, str]]] = {
    "cases status+channel": (
        "/v1/cases",
        {"status": "mediating", "channel": "people", "limit": "100"},
    ),
    "cases tier+overdue": ("/v1/cases", {"tier": "town", "overdue": "true", "limit": "100"}),
    "cases type+source desc": (
        "/v1/cases",
        {"dispute_type": "labour", "source": "12345", "order": "desc", "limit": "100"},
    ),
    "cases since": ("/v1/cases", {"since": "", "limit": "100"}),
    "stats": ("/v1/stats", {}),
    "stats channel": ("/v1/stats", {"channel": "people"}),
    "series month by type": (
        "/v1/stats/series",
        {"from": "", "to": "", "bucket": "month", "group_by": "dispute_type"},
    ),
    "series day by town": (
        "/v1/stats/series",
        {"from": "", "to": "", "bucket": "day", "group_by": "area", "level": "town"},
    ),
    "areas summary": ("/v1/areas/summary", {"from": "", "to": "", "level": "town"}),
}


def _rows(n: int, columns: list[str], seed: int = 11) -> Any:
    """Plausible ledger_cases rows (python values by column name), one per case."""
    rng = random.Random(seed)
    statuses = [s for s, w in STATUSES for _ in range(w)]
    now = datetime.now(UTC)
    for i in range(n):
        status, channel, tier = rng.choice(statuses), rng.choice(CHANNELS), rng.choice(TIERS)
        received = now - timedelta(seconds=rng.randrange(365 * 86400))
        updated = received + timedelta(seconds=rng.randrange(30 * 86400))
        agreed = updated if status in ("agreed", "follow_up", "closed") else None
        sign_due, med_due = received + timedelta(hours=24), received + timedelta(days=30)
        overdue = rng.random() < 0.08 and status not in ("closed", "transferred")
        v = {
            "case_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "version": i + 1,
            "entries": rng.randint(3, 9),
            "last_hash": f"{i:064x}",
            "status": status,
            "source": rng.choice(SOURCES),
            "source_ref": f"R{i:09d}",
            "dispute_type": rng.choice(TYPES),
            "severity": rng.choice(SEVERITIES),
            "channel": channel,
            "co_channels": [],
            "tier": tier,
            "first_tier": tier if rng.random() < 0.85 else "grid",
            "organisation_id": f"{channel}-{tier}",
            "mediator_id": f"med-{channel}-{tier}-day",
            "grid_code": rng.choice(GRIDS),
            "parties": [{"role": "applicant", "kind": "person", "display": "王*"}],
            "sign_for_due": sign_due,
            "mediation_due": med_due,
            "sign_for_overdue": overdue,
            "mediation_overdue": False,
            "overdue": overdue,
            "created_at": received,
            "updated_at": min(updated, now),
            "received_at": received,
            "agreed_at": agreed,
            "closed_at": updated if status == "closed" else None,
            "return_count": 0,
            "escalation_count": 0,
            "reopen_count": 0,
            "satisfaction": rng.randint(1, 5) if status == "closed" else None,
        }
        yield [v.get(c) for c in columns]


async def _migrate(db: Path) -> None:
    from services.followup.main import MIGRATIONS
    from shared.db import make_engine, migrate

    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        await migrate(engine, MIGRATIONS)
    finally:
        await engine.dispose()


def load(db: Path, n: int, chunk: int = 20_000) -> dict[str, Any]:
    """Migrate a fresh follow-up database and bulk-insert n ledger_cases rows."""
    from dataclasses import fields

    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from services.followup.ledger import CaseProjection
    from services.followup.reporting.domain import contribution
    from services.followup.reporting.repository import DailyStat
    from services.followup.repository import LedgerCase

    asyncio.run(_migrate(db))
    projected = [f.name for f in fields(CaseProjection)]
    sums: dict[tuple[Any, ...], list[int]] = {}
    table = LedgerCase.__table__  # type: ignore[attr-defined]
    dialect = sqlite_dialect.dialect()
    columns = [c.name for c in table.columns]
    procs = [c.type.bind_processor(dialect) for c in table.columns]  # as SQLAlchemy stores
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=OFF")
        batch: list[list[Any]] = []
        for row in _rows(n, columns):
            # the daily aggregates the ledger hook would have kept, one row per key
            v = dict(zip(columns, row, strict=True))
            c = contribution(CaseProjection(**{k: v[k] for k in projected}))
            if c is not None:
                acc = sums.setdefault(c.key, [0] * len(c.measures))
                for j, m in enumerate(c.measures):
                    acc[j] += m
            batch.append(
                [p(v) if p and v is not None else v for p, v in zip(procs, row, strict=True)]
            )
            if len(batch) >= chunk:
                con.executemany(sql, batch)
                batch.clear()
        if batch:
            con.executemany(sql, batch)
        agg = DailyStat.__table__  # type: ignore[attr-defined]
        agg_cols = [c.name for c in agg.columns]
        con.executemany(
            f"INSERT INTO {agg.name} ({', '.join(agg_cols)}) "
            f"VALUES ({', '.join('?' for _ in agg_cols)})",
            [(k[0].isoformat(), *k[1:], *m) for k, m in sums.items()],
        )
        con.commit()
        con.execute("ANALYZE")
        con.commit()
    finally:
        con.close()
    return {
        "cases": n,
        "load_s": round(time.perf_counter() - t0, 1),
        "db_mb": round(db.stat().st_size / 1e6, 1),
    }


async def _time_queries(base: str, token: str, repeats: int) -> dict[str, Any]:
    import httpx

    since = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    today = datetime.now(UTC).date()
    period = {"from": (today - timedelta(days=364)).isoformat(), "to": today.isoformat()}
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(
        base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for name, (path, params) in QUERIES.items():
            params = {k: (since if k == "since" else period.get(k, v)) for k, v in params.items()}
            r = await client.get(path, params=params)  # warm-up (page cache, plan)
            if r.status_code != 200:
                out[name] = {"error": f"HTTP {r.status_code}: {r.text[:200]}"}
                continue
            body = r.json()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                r = await client.get(path, params=params)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            out[name] = {
                "p50_ms": round(percentile(times, 50) or 0, 1),
                "p95_ms": round(percentile(times, 95) or 0, 1),
                "requests": repeats,
                "rows": body.get("count", body.get("total", len(body.get("items", [])))),
            }
    return out


def run(n: int, workdir: Path, repeats: int = 30) -> dict[str, Any]:
    """Load n cases, start the follow-up service on them, time the dashboard queries."""
    from shared.auth import StaffPrincipal, issue_token
    from shared.settings import DEV_JWT_SECRET

    db = workdir / "followup.db"
    loaded = load(db, n)
    stack = Stack(prefix=f"benchread{uuid.uuid4().hex[:8]}-", workdir=workdir, only=("followup",))
    try:
        stack.start()
        token = issue_token(
            DEV_JWT_SECRET, "fengqiao", StaffPrincipal(subject="bench-admin", role="admin")
        )
        queries = asyncio.run(_time_queries(stack.url("followup"), token, repeats))
    finally:
        stack.stop()
    return {**loaded, "queries": queries}


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fq-bench-read-") as d:
        print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000, Path(d)), indent=2))
