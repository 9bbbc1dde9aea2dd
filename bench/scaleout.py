"""Scale-out on PostgreSQL: one instance of every service, then two in the same consumer groups,
alternated over rounds (×1, ×2, ×1, ×2: a shared host's drift falls on both alike).

Each run gets fresh databases on the project's server (scripts/pg.sh, the helpers of
scripts/chaos.py), a fresh topic/group prefix, full speed. Besides the e2e figures and the
bench's own lost/doubled/causal-order counts (bench.e2e.checks), every run ends with `make
chaos`'s own check (scripts/chaos.py `check`): through the services' APIs, every report is one
case, assigned once, its trail verified and in causal order, the ledger's status equal to
mediation's, feedback in causal order, no consumer lag, no dead letters.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.common import BOOTSTRAP, ROOT


def load_chaos() -> ModuleType:
    """scripts/chaos.py as a module (it is a script, not a package)."""
    if "chaos" in sys.modules:
        return sys.modules["chaos"]
    spec = importlib.util.spec_from_file_location("chaos", ROOT / "scripts" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def ensure_pg() -> None:
    """Start the project's PostgreSQL (scripts/pg.sh) unless one answers on its port."""
    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "pg.sh"), "start"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        raise RuntimeError(f"pg.sh start failed: {r.stderr.strip()[-300:]}")


def deep_check(stack: Any, out: dict[str, Any], settle_s: float = 120) -> None:
    """scripts/chaos.py's check on the still-running stack, retried until it settles."""
    chaos = load_chaos()
    run = out["full_speed"]
    cases: dict[str, str] = run["case_of_ref"]
    reports = [{"source_ref": r} for r in run["submitted_refs"]]
    result = chaos.Result()
    admin = chaos.admin_header(stack.env())
    from shared.topics import Topics

    async def go() -> bool:
        deadline = time.monotonic() + settle_s
        while True:
            settled: bool = await chaos.check(
                stack, BOOTSTRAP, Topics(stack.prefix), stack.prefix, cases, reports, result, admin
            )
            if settled or time.monotonic() > deadline:
                return settled
            await asyncio.sleep(3)

    t0 = time.monotonic()
    settled = asyncio.run(go())
    run["chaos_check"] = {
        "settled": settled,
        "check_s": round(time.monotonic() - t0, 1),
        "submitted": result.submitted,
        "cases": result.cases,
        **{k: getattr(result, k) for k in result.ZERO},
        "dead_letters": result.dlq,
        "ok": result.ok(),
    }


def _spin(stop: Any) -> None:
    """A busy Python process: an interpreter's kind of work (integer adds, dict stores)."""
    d: dict[int, int] = {}
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x += i
            d[i % 5000] = x


def _decision_cpu_us(n: int) -> float:
    from bench.bench_triage import run as decide_many

    got = decide_many(n)
    return float(got["cpu_seconds"]) / n * 1e6


def crowding(decisions: int = 3000, rounds: int = 2) -> dict[str, Any]:
    """CPU µs per triage decision alone, beside a busy process for each other core (the cores
    full) and beside four per core (crowded: two instances of every service, the broker and
    PostgreSQL are ten busy processes on this machine's two cores). The same work; what it
    costs more when crowded is the machine's (context switches), not the services'. Each
    setting keeps its best of `rounds`."""
    import multiprocessing

    cores = os.cpu_count() or 1
    settings = {"alone": 0, "cores full": cores - 1, "crowded": 4 * cores - 1}
    ctx = multiprocessing.get_context("spawn")
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, busy in settings.items():
            stop = ctx.Event()
            procs = [ctx.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
            for proc in procs:
                proc.start()
            try:
                time.sleep(0.5 if busy else 0)
                us = _decision_cpu_us(decisions)
            finally:
                stop.set()
                for proc in procs:
                    proc.join(10)
            best[name] = min(us, best.get(name, us))
    out: dict[str, Any] = {"cores": cores, "busy_beside": settings}
    for name, us in best.items():
        out[name] = {"us": round(us), "ratio": round(us / best["alone"], 2)}
    return out


def run(
    reports_fn: Any,
    n: int,
    *,
    instances: tuple[int, ...] = (1, 2),
    rounds: int = 2,
    stall_s: float = 120,
    timeout_s: float = 3600,
) -> dict[str, Any]:
    """Full-speed runs of each instance count, alternated for `rounds` rounds (×1, ×2, ×1,
    ×2, ...: a shared host's drift falls on both alike), each on fresh databases. The first
    round's runs are kept whole (`runs`); every round's throughput and checks are in `rounds`;
    the ratio is of the throughputs summed over the rounds."""
    from bench import e2e

    ensure_pg()
    chaos = load_chaos()
    out: dict[str, Any] = {"db": "postgresql", "runs": {}, "rounds": [], "crowding": crowding()}
    for i in range(max(1, rounds)):
        this: dict[str, Any] = {}
        for k in instances:
            prefix = f"bench{uuid.uuid4().hex[:8]}-"
            urls = asyncio.run(chaos.pg_databases(prefix))
            try:
                with tempfile.TemporaryDirectory(prefix="fq-bench-pg-") as d:
                    r = e2e.run_stack(
                        reports_fn,
                        n,
                        None,
                        False,
                        Path(d),
                        instances=k,
                        extra_env=urls,
                        stall_s=stall_s,
                        timeout_s=timeout_s,
                        prefix=prefix,
                        after=deep_check,
                    )
            finally:
                asyncio.run(chaos.pg_drop(prefix))
            if i == 0:
                out["runs"][f"x{k}"] = r
            full = r.get("full_speed", {})
            this[f"x{k}"] = {
                "throughput_per_s": full.get("throughput_per_s"),
                "throughput_all_per_s": full.get("throughput_all_per_s"),
                "faults": full.get("faults"),
                "chaos_ok": full.get("chaos_check", {}).get("ok"),
            }
        out["rounds"].append(this)
    for k in instances[1:]:
        one = f"x{instances[0]}"
        out[f"ratio_x{k}_to_x1"] = throughput_ratio(out["rounds"], f"x{k}", one)
        # to the last ledger entry and source feedback: the whole pipeline's work done (on two
        # cores, how the CPU is shared between the services ahead of the assignment and those
        # behind it moves the assignment's rate, not this one)
        out[f"ratio_all_x{k}_to_x1"] = throughput_ratio(
            out["rounds"], f"x{k}", one, "throughput_all_per_s"
        )
    return out


def throughput_ratio(
    rounds: list[dict[str, Any]], more: str, one: str = "x1", key: str = "throughput_per_s"
) -> float | None:
    """Throughput (`key`) of `more` over `one`, each summed over the rounds (None when a run
    has none)."""
    a: list[float | None] = [r[one].get(key) for r in rounds]
    b: list[float | None] = [r[more].get(key) for r in rounds]
    if not rounds or not all(a) or not all(b):
        return None
    return round(sum(x or 0.0 for x in b) / sum(x or 0.0 for x in a), 2)
