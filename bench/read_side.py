"""Read side: a million cases in the follow-up ledger, then dashboard queries timed over HTTP.

Rows go straight into a fresh follow-up SQLite database (its own migrations, its own table
definitions and column types, sqlite3 executemany), never through the API or the bus.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import ROOT, percentile
from bench.stack import Stack
from services.followup.reporting.domain import KEY_FIELDS, MEASURE_FIELDS
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
COORD_AREA = "522731001"  # the town of the coordinator whose scope is timed too
NOW = datetime.now(UTC).replace(microsecond=0)  # one clock for every pass over the cases
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
    "areas summary village": ("/v1/areas/summary", {"from": "", "to": "", "level": "village"}),
    "coordinator stats": ("/v1/stats", {}),
    "coordinator stats type": ("/v1/stats", {"dispute_type": "labour"}),
    "coordinator series week by type": (
        "/v1/stats/series",
        {"from": "", "to": "", "bucket": "week", "group_by": "dispute_type"},
    ),
    "coordinator areas summary": (
        "/v1/areas/summary",
        {"from": "", "to": "", "level": "village"},
    ),
}


def _rows(n: int, columns: list[str], seed: int = 11) -> Any:
    """Plausible ledger_cases rows (python values by column name), one per case."""
    rng = random.Random(seed)
    statuses = [s for s, w in STATUSES for _ in range(w)]
    now = NOW
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


def _codes(n: int) -> dict[str, Any]:
    """The cases as small integers (per counter dimension) and their measures, for numpy."""
    import numpy as np

    from services.followup.ledger import CaseProjection
    from services.followup.reporting.domain import (
        LEVELS,
        LOCATED,
        UNLOCATED,
        measures_of,
        received_day,
        scope_area,
    )

    vocab: dict[str, int] = {"": 0}

    def code(value: str | None) -> int:
        return vocab.setdefault((value or "")[:128], len(vocab))

    names = ["status", "channel", "severity", "dispute_type", "source", "organisation_id", "tier"]
    columns = ["received_at", "created_at", "agreed_at", "mediation_due", "satisfaction"]
    columns += ["first_tier", "grid_code", "overdue", *names]
    cols: dict[str, list[int]] = {k: [] for k in [*names, "day", "a0", "a1", "a2", "a3", "a4"]}
    measures: list[tuple[int, ...]] = []
    for row in _rows(n, ["case_id", *columns]):
        v = dict(zip(["case_id", *columns], row, strict=True))
        p = CaseProjection(**v)
        day = received_day(p)
        assert day is not None
        cols["day"].append(day.toordinal())
        for k in names:
            cols[k].append(code(v[k]))
        grid = v["grid_code"] or ""
        cols["a0"].append(code(LOCATED if grid else UNLOCATED))
        for level in LEVELS:
            cols[f"a{level}"].append(code(scope_area(grid, level)) if grid else -1)
        measures.append(measures_of(p))
    return {
        "cols": {k: np.array(v, dtype=np.int64) for k, v in cols.items()},
        "measures": np.array(measures, dtype=np.int64),
        "words": {i: w for w, i in vocab.items()},
    }


def _counter_passes(coded: dict[str, Any]) -> Any:
    """The counter rows the ledger hook would have kept, one (span, level, filter, group) pass
    at a time: numpy's unique and bincount over the coded cases (the same rules as
    reporting.domain.counter_keys, checked against it on a sample by `check_counters`)."""
    from datetime import date

    import numpy as np

    from services.followup.reporting.domain import (
        DAY_GROUPS,
        LEVELS,
        MONTH_GROUPS,
        NONE,
        SPAN_DAY,
        SPAN_MONTH,
        SPAN_WEEK,
        _combos,
    )

    c, m, words = coded["cols"], coded["measures"], coded["words"]
    nv = len(words) + 1
    day0 = int(c["day"].min())
    days = c["day"] - day0
    weeks = c["day"] - (c["day"] - 1) % 7 - (day0 - 31)  # the Monday (ordinal 1 is a Monday)
    months = np.array(
        [date.fromordinal(int(d)).replace(day=1).toordinal() for d in c["day"]], dtype=np.int64
    )
    months -= day0 - 31
    spans = (
        (SPAN_DAY, days, DAY_GROUPS, True),
        (SPAN_WEEK, weeks, DAY_GROUPS, False),
        (SPAN_MONTH, months, MONTH_GROUPS, True),
    )
    for span, periods, groups, filtered in spans:
        dims = [
            (f, g)
            for f, _, g, _ in _combos(
                {d: d for d in (*groups, "channel", "severity", "dispute_type", "source")},
                groups,
                filtered,
            )
        ]
        for level in (0, *LEVELS):
            area = c[f"a{level}"]
            mask = area >= 0
            for fdim, gdim in dims:
                fv = c[fdim][mask] if fdim else np.zeros(int(mask.sum()), dtype=np.int64)
                gv = c[gdim][mask] if gdim else np.zeros(int(mask.sum()), dtype=np.int64)
                key = (
                    ((periods[mask] * nv + area[mask]) * nv + c["tier"][mask]) * nv + fv
                ) * nv + gv
                uniq, inv = np.unique(key, return_inverse=True)
                sums = np.stack(
                    [
                        np.bincount(inv, weights=m[mask][:, j], minlength=len(uniq))
                        for j in range(m.shape[1])
                    ],
                    axis=1,
                ).astype(np.int64)
                rest, g_ = np.divmod(uniq, nv)
                rest, f_ = np.divmod(rest, nv)
                rest, t_ = np.divmod(rest, nv)
                per, a_ = np.divmod(rest, nv)
                rows = []
                for i in range(len(uniq)):
                    period = date.fromordinal(
                        int(per[i]) + (day0 if span == SPAN_DAY else day0 - 31)
                    )
                    rows.append(
                        (
                            span,
                            period,
                            level,
                            words[int(a_[i])],
                            words[int(t_[i])],
                            fdim or NONE,
                            words[int(f_[i])],
                            gdim or NONE,
                            words[int(g_[i])],
                            *(int(x) for x in sums[i]),
                        )
                    )
                yield rows


def check_counters(n: int = 1500) -> None:
    """The numpy loader's counters equal the ledger hook's rules on a sample."""
    from services.followup.ledger import CaseProjection
    from services.followup.reporting.domain import counter_keys, measures_of

    columns = [c.name for c in _ledger_table().columns]
    want: dict[tuple[Any, ...], list[int]] = {}
    from dataclasses import fields

    projected = [f.name for f in fields(CaseProjection)]
    for row in _rows(n, columns):
        v = dict(zip(columns, row, strict=True))
        p = CaseProjection(**{k: v[k] for k in projected})
        for key in counter_keys(p):
            acc = want.setdefault(key, [0] * 10)
            for i, x in enumerate(measures_of(p)):
                acc[i] += x
    got = {r[:9]: list(r[9:]) for rows in _counter_passes(_codes(n)) for r in rows}
    assert got == want, "the bench's counters differ from the ledger hook's"


def _ledger_table() -> Any:
    from services.followup.repository import LedgerCase

    return LedgerCase.__table__  # type: ignore[attr-defined]


async def _migrate(url: str) -> None:
    from services.followup.main import MIGRATIONS
    from shared.db import make_engine, migrate

    engine = make_engine(url)
    try:
        await migrate(engine, MIGRATIONS)
    finally:
        await engine.dispose()


# the counter table's columns, in the order the ledger hook writes them
COUNTER_COLUMNS = (*KEY_FIELDS, *MEASURE_FIELDS)


def load(db: Path, n: int, coded: dict[str, Any], chunk: int = 20_000) -> dict[str, Any]:
    """Migrate a fresh follow-up SQLite database, bulk-insert n cases and their counters."""
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    asyncio.run(_migrate(f"sqlite+aiosqlite:///{db}"))
    table = _ledger_table()
    dialect = sqlite_dialect.dialect()
    columns = [c.name for c in table.columns]
    procs = [c.type.bind_processor(dialect) for c in table.columns]  # as SQLAlchemy stores
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    counters = 0
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=OFF")
        batch: list[list[Any]] = []
        for row in _rows(n, columns):
            batch.append(
                [p(v) if p and v is not None else v for p, v in zip(procs, row, strict=True)]
            )
            if len(batch) >= chunk:
                con.executemany(sql, batch)
                batch.clear()
        if batch:
            con.executemany(sql, batch)
        insert = (
            f"INSERT INTO stats_counters ({', '.join(COUNTER_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in COUNTER_COLUMNS)})"
        )
        for rows in _counter_passes(coded):
            con.executemany(insert, [(r[0], r[1].isoformat(), *r[2:]) for r in rows])
            counters += len(rows)
        con.commit()
        con.execute("ANALYZE")
        con.commit()
    finally:
        con.close()
    return {
        "cases": n,
        "counter_rows": counters,
        "load_s": round(time.perf_counter() - t0, 1),
        "db_mb": round(db.stat().st_size / 1e6, 1),
    }


async def load_pg(url: str, n: int, coded: dict[str, Any], chunk: int = 20_000) -> dict[str, Any]:
    """The same cases and counters in a fresh PostgreSQL database (COPY)."""
    import asyncpg

    await _migrate(url)
    table = _ledger_table()
    columns = [c.name for c in table.columns]
    json_cols = {i for i, c in enumerate(columns) if c in ("co_channels", "parties")}
    t0 = time.perf_counter()
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    counters = 0
    try:
        batch: list[tuple[Any, ...]] = []
        for row in _rows(n, columns):
            batch.append(tuple(json.dumps(v) if i in json_cols else v for i, v in enumerate(row)))
            if len(batch) >= chunk:
                await conn.copy_records_to_table(table.name, records=batch, columns=columns)
                batch.clear()
        if batch:
            await conn.copy_records_to_table(table.name, records=batch, columns=columns)
        for rows in _counter_passes(coded):
            await conn.copy_records_to_table(
                "stats_counters", records=rows, columns=list(COUNTER_COLUMNS)
            )
            counters += len(rows)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return {"cases": n, "counter_rows": counters, "load_s": round(time.perf_counter() - t0, 1)}


async def _time_queries(base: str, tokens: dict[str, str], repeats: int) -> dict[str, Any]:
    import httpx

    since = (NOW - timedelta(days=2)).isoformat()
    today = NOW.date()
    period = {"from": (today - timedelta(days=364)).isoformat(), "to": today.isoformat()}
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        for name, (path, params) in QUERIES.items():
            who = "coordinator" if name.startswith("coordinator") else "admin"
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            params = {k: (since if k == "since" else period.get(k, v)) for k, v in params.items()}
            r = await client.get(path, params=params, headers=headers)  # warm-up (cache, plan)
            if r.status_code != 200:
                out[name] = {"error": f"HTTP {r.status_code}: {r.text[:200]}"}
                continue
            body = r.json()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                r = await client.get(path, params=params, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            out[name] = {
                "p50_ms": round(percentile(times, 50) or 0, 1),
                "p95_ms": round(percentile(times, 95) or 0, 1),
                "requests": repeats,
                "rows": body.get("count", body.get("total", len(body.get("items", [])))),
            }
    return out


def _tokens() -> dict[str, str]:
    from shared.auth import DEV_JWT_PRIVATE_KEY as DEV_JWT_SECRET
    from shared.auth import StaffPrincipal, issue_token

    return {
        "admin": issue_token(
            DEV_JWT_SECRET, "fengqiao-followup", StaffPrincipal(subject="bench-admin", role="admin")
        ),
        # a town's coordinator: their tier and the grid tier, inside their town
        "coordinator": issue_token(
            DEV_JWT_SECRET,
            "fengqiao-followup",
            StaffPrincipal(
                subject="bench-coord", role="coordinator", tier="town", grid_codes=(COORD_AREA,)
            ),
        ),
    }


def _timed(workdir: Path, env: dict[str, str], repeats: int, label: str) -> dict[str, Any]:
    stack = Stack(
        prefix=f"benchread{uuid.uuid4().hex[:8]}-",
        workdir=workdir,
        only=("followup",),
        extra_env=env,
    )
    try:
        stack.start()
        return asyncio.run(_time_queries(stack.url("followup"), _tokens(), repeats))
    finally:
        stack.stop()


def _pg_admin_url() -> str:
    script = str(ROOT / "scripts" / "pg.sh")
    subprocess.run(["bash", script, "start"], check=True, capture_output=True, timeout=600)
    return subprocess.run(
        ["bash", script, "url"], check=True, capture_output=True, text=True
    ).stdout.strip()


async def _pg_database(admin: str, name: str, create: bool) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin.replace("postgresql+asyncpg", "postgresql"))
    try:
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


def run_pg(n: int, workdir: Path, coded: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Load the cases and counters into a fresh PostgreSQL database and time the queries."""
    name = f"bench_read_{uuid.uuid4().hex[:8]}"
    try:
        admin = _pg_admin_url()
        asyncio.run(_pg_database(admin, name, create=True))
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL here: SQLite's figures stand
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    try:
        url = admin.rsplit("/", 1)[0] + f"/{name}"
        loaded = asyncio.run(load_pg(url, n, coded))
        return {**loaded, "queries": _timed(workdir, {"FOLLOWUP_DATABASE_URL": url}, repeats, "pg")}
    finally:
        asyncio.run(_pg_database(admin, name, create=False))


def run(n: int, workdir: Path, repeats: int = 30, pg: bool = True) -> dict[str, Any]:
    """Load n cases (and their counters) into SQLite and PostgreSQL, start the follow-up service
    on each, time the dashboard queries. PostgreSQL's figures are the queries named "pg …"."""
    check_counters()
    coded = _codes(n)
    loaded = load(workdir / "followup.db", n, coded)
    queries = _timed(workdir, {}, repeats, "sqlite")
    out: dict[str, Any] = {**loaded, "queries": queries}
    print(f"[bench] read side on SQLite: {json.dumps(out)}", file=sys.stderr, flush=True)
    if pg:
        out["pg"] = run_pg(n, workdir, coded, repeats)
        queries.update({f"pg {k}": v for k, v in out["pg"].pop("queries", {}).items()})
    return out


if __name__ == "__main__":
    import tempfile

    # python -m bench.read_side N [--no-pg | --pg-only]; --time DIR: time a loaded followup.db
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--time" in sys.argv:
        print(json.dumps(_timed(Path(args[0]), {}, 30, "sqlite"), indent=2))
        sys.exit(0)
    with tempfile.TemporaryDirectory(prefix="fq-bench-read-") as d:
        n = int(args[0]) if args else 20_000
        if "--pg-only" in sys.argv:
            print(json.dumps(run_pg(n, Path(d), _codes(n), 30), indent=2, default=str))
        else:
            print(json.dumps(run(n, Path(d), pg="--no-pg" not in sys.argv), indent=2, default=str))
