"""Capacity model: cores, partitions and brokers for a deployment, from one bench JSON.

`python -m bench.capacity bench/results/bench-<stamp>.json` prints the table of
docs/scaling.md from the measured CPU per case per service, messages per case and broker
ceiling of that run. The assumptions (volumes, peak factor, life factor, utilisation targets)
are the constants below, each explained in docs/scaling.md.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICES = ("intake", "triage", "mediation", "followup")
YEAR_S = 365 * 24 * 3600


@dataclass(frozen=True)
class Scope:
    """A deployment's demand."""

    name: str
    reports_per_year: float
    peak_factor: float = 20.0  # peak hour over the year's mean rate


SCOPES = (
    # a large county-level city: Kunshan's 62万 valid 110 incidents in 2018 (docs/scaling.md)
    Scope("county", 620_000),
    # the province: 30 million reports a year, peaks 20× the mean
    Scope("province", 30_000_000),
    # all of China's 110: 5.46亿 incidents handled 2017–2021 (MPS, 2022-05-19) ≈ 1.1亿 a year
    Scope("country (110)", 110_000_000),
)
# The bench follows a case from report to assignment (3 trail entries: received, triaged,
# assigned); a whole life has about 3× as many steps (accept, mediating notes, agree,
# follow-up visits, close), so whole-life cost = LIFE × measured cost per case.
LIFE = 3.0
CPU_TARGET = 0.6  # of each core at the peak: headroom for rebalances, replays, GC
BROKER_TARGET = 0.3  # of the measured single-broker ceiling, after replication
REPLICATION = 3  # replicas of every partition (min.insync.replicas 2)
MIN_BROKERS = 3  # for replication factor 3
MIN_PARTITIONS = 12  # the services' default (FENGQIAO_KAFKA_PARTITIONS)


def inputs(doc: dict[str, Any]) -> dict[str, Any]:
    """The measured figures the model uses, from a bench JSON (fields named in scaling.md)."""
    run = doc["stages"]["e2e"]["full_speed"]
    cpu = run["cpu_ms_per_case"]
    msgs = run["messages_per_case"]
    ceiling = doc["stages"].get("ceiling", {}).get("ceiling_msgs_per_s")
    # the database's own CPU per case: measured where the services run on PostgreSQL (the
    # scale-out stage's single-instance run), as a province or the country would
    pg = doc["stages"].get("scaleout", {}).get("runs", {}).get("x1", {}).get("full_speed", {})
    pg_ms = (pg.get("cpu_ms_per_case") or {}).get("postgresql")
    return {
        "cpu_ms": {s: float(cpu[s]) for s in SERVICES if s in cpu},
        "postgresql_cpu_ms": float(pg_ms) if pg_ms is not None else None,
        # a broker that has run for a while: without its JIT compiling (a fresh broker's start)
        "broker_cpu_ms": cpu["kafka broker"] - (cpu.get("kafka broker jit") or 0.0)
        if cpu.get("kafka broker") is not None
        else None,
        "messages": float(msgs["services"]),
        "ceiling_msgs_per_s": float(ceiling) if ceiling else None,
        "throughput_per_s": run.get("throughput_per_s"),
        "throughput_all_per_s": run.get("throughput_all_per_s"),
        "services_cpu_s": sum(float(run["cpu_s"].get(s, 0)) for s in SERVICES)
        if "cpu_s" in run
        else None,
        "wall_s": run.get("wall_s"),
        "cores": doc.get("machine", {}).get("usable_cores"),
        "started_at": doc.get("started_at"),
    }


def plan(scope: Scope, m: dict[str, Any]) -> dict[str, Any]:
    """Cores per service, partitions and brokers for one scope at its peak."""
    mean = scope.reports_per_year / YEAR_S
    peak = mean * scope.peak_factor
    cores = {s: peak * LIFE * ms / 1000 / CPU_TARGET for s, ms in m["cpu_ms"].items()}
    instances = {s: max(2, math.ceil(c)) for s, c in cores.items()}  # 2: one may fail
    pg_ms = m.get("postgresql_cpu_ms")
    db_cores = peak * LIFE * pg_ms / 1000 / CPU_TARGET if pg_ms is not None else None
    msgs_per_s = peak * LIFE * m["messages"]
    ceiling = m["ceiling_msgs_per_s"]
    brokers = MIN_BROKERS
    if ceiling:
        brokers = max(MIN_BROKERS, math.ceil(msgs_per_s * REPLICATION / (ceiling * BROKER_TARGET)))
    return {
        "scope": scope.name,
        "reports_per_year": scope.reports_per_year,
        "mean_per_s": round(mean, 3),
        "peak_per_s": round(peak, 2),
        "cores": {s: round(c, 2) for s, c in cores.items()},
        "cores_total": round(sum(cores.values()), 1),
        # PostgreSQL's, all four databases together (on top of the services' cores)
        "database_cores": round(db_cores, 2) if db_cores is not None else None,
        "instances": instances,
        "partitions": max(MIN_PARTITIONS, 2 * max(instances.values())),
        "messages_per_s_peak": round(msgs_per_s, 1),
        "broker_share_of_ceiling": (
            round(msgs_per_s * REPLICATION / ceiling, 4) if ceiling else None
        ),
        "brokers": brokers,
    }


def table(m: dict[str, Any]) -> str:
    """The plans of every scope as a markdown table."""
    head = (
        "| scope | reports/yr | peak/s | cores at peak (intake/triage/mediation/followup) "
        "| cores | PostgreSQL cores | instances each | partitions | msg/s at peak "
        "| of one broker | brokers |\n"
        "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|"
    )
    rows = [head]
    for scope in SCOPES:
        p = plan(scope, m)
        share = p["broker_share_of_ceiling"]
        rows.append(
            f"| {p['scope']} | {p['reports_per_year']:,.0f} | {p['peak_per_s']} | "
            + " / ".join(f"{p['cores'].get(s, 0):.2f}" for s in SERVICES)
            + f" | {p['cores_total']} | "
            + (f"{p['database_cores']:.2f}" if p["database_cores"] is not None else "—")
            + " | "
            + "/".join(str(p["instances"].get(s, "—")) for s in SERVICES)
            + f" | {p['partitions']} | {p['messages_per_s_peak']:,.0f} | "
            + (f"{share:.1%}" if share is not None else "—")
            + f" | {p['brokers']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Print the inputs, the check against the run and the table for a bench JSON."""
    args = sys.argv[1:] if argv is None else argv
    ceiling = None
    if len(args) == 3 and args[1] == "--ceiling":  # a quieter run's broker ceiling
        ceiling, args = float(args[2]), args[:1]
    if len(args) != 1:
        print(
            "usage: python -m bench.capacity bench/results/bench-<stamp>.json [--ceiling MSG_S]",
            file=sys.stderr,
        )
        return 2
    m = inputs(json.loads(Path(args[0]).read_text(encoding="utf-8")))
    if ceiling:
        m["ceiling_msgs_per_s"] = ceiling
    total = sum(m["cpu_ms"].values())
    print(
        f"bench {m['started_at']}: CPU ms/case "
        + ", ".join(f"{s} {v:.1f}" for s, v in m["cpu_ms"].items())
        + f" (sum {total:.1f}); PostgreSQL {m['postgresql_cpu_ms']} ms/case (pg ×1); "
        + f"{m['messages']} messages/case by the services; "
        f"ceiling {m['ceiling_msgs_per_s']} msg/s"
    )
    if m.get("services_cpu_s") and m.get("wall_s") and total:
        got = m["services_cpu_s"] / m["wall_s"]  # cores the services actually had, on average
        print(
            f"check: the services had {got:.2f} cores on average over the run; "
            f"{got:.2f} × 1000 / {total:.1f} ms = {got * 1000 / total:.1f} cases/s predicted, "
            f"{m['throughput_all_per_s']} cases/s measured (assigned, in the ledger and told)"
        )
    print()
    print(table(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
