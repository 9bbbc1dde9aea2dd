"""`python -m bench.run`: every benchmark in one go; one table printed, one JSON file written.

Stages: ceiling (raw aiokafka), triage (decisions/s), e2e (full speed and steady rate, to
assignment, ledger and source feedback), read (ledger queries on a million cases), scaleout
(PostgreSQL: one instance of every service, then two, each checked for loss and order),
warnings (what the early warnings and daily aggregates cost per ledger event).
A stage that fails is reported as failed; the others still run. Nothing timed is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, broker_settings, ensure_broker, machine, versions

STAGES = ("ceiling", "triage", "e2e", "steady", "read", "scaleout", "warnings")  # steady: in e2e
RESULTS = ROOT / "bench" / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    ap.add_argument(
        "--reports", type=int, default=20_000, help="reports per end-to-end run (default 20000)"
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="offered rate of the steady run, reports/s (default 100, the issue's target)",
    )
    ap.add_argument(
        "--cases",
        type=int,
        default=1_000_000,
        help="cases in the ledger for the read side (default 1000000)",
    )
    ap.add_argument(
        "--ceiling-messages",
        type=int,
        default=50_000,
        help="messages for the broker ceiling (default 50000)",
    )
    ap.add_argument(
        "--triage-decisions",
        type=int,
        default=None,
        help="decisions for triage alone (default: --reports)",
    )
    ap.add_argument(
        "--read-requests", type=int, default=30, help="timed requests per read query (default 30)"
    )
    ap.add_argument(
        "--warning-cases",
        type=int,
        default=200,
        help="cases per batch (three batches) for the warnings' cost per event (default 200)",
    )
    ap.add_argument(
        "--scaleout-rounds",
        type=int,
        default=2,
        help="PostgreSQL ×1 and ×2 runs, alternated this many times (default 2)",
    )
    ap.add_argument("--skip", default="", help=f"comma-separated stages to skip: {STAGES}")
    ap.add_argument(
        "--stall",
        type=float,
        default=120,
        help="give up an e2e run after this many seconds without trail progress",
    )
    ap.add_argument(
        "--timeout", type=float, default=3600, help="upper bound of one e2e run, seconds"
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="sample the services' CPU with py-spy during the e2e runs (bench/profile.py; "
        "summaries in bench/results/profile-*/)",
    )
    return ap.parse_args(argv)


def stage(results: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    """Run one stage; a failure is recorded, never raised."""
    print(f"[bench] {name} …", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    try:
        results[name] = {"ok": True, **fn()}
    except BaseException as exc:  # noqa: BLE001 - a failed stage must not stop the others
        if isinstance(exc, KeyboardInterrupt):
            results[name] = {
                "ok": False,
                "error": "interrupted",
                "stage_s": round(time.monotonic() - t0, 1),
            }
            raise
        results[name] = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}"[:1500],
            "traceback": traceback.format_exc()[-3000:],
        }
    results[name]["stage_s"] = round(time.monotonic() - t0, 1)
    status = "ok" if results[name]["ok"] else "FAILED: " + results[name]["error"][:300]
    print(f"[bench] {name} {status} ({results[name]['stage_s']}s)", file=sys.stderr, flush=True)


def _e2e(args: argparse.Namespace, steady: bool, profile_dir: Path | None = None) -> dict[str, Any]:
    from bench import e2e
    from bench.reports import generate

    # BENCH_KEEP_DIR=1: the stack's databases and service logs are kept (to look into a fault)
    keep = os.environ.get("BENCH_KEEP_DIR", "") not in ("", "0")
    workdir = (
        contextlib.nullcontext(tempfile.mkdtemp(prefix="fq-bench-e2e-"))
        if keep
        else tempfile.TemporaryDirectory(prefix="fq-bench-e2e-")
    )
    with workdir as d:
        if keep:
            print(f"[bench] e2e stack kept in {d}", file=sys.stderr, flush=True)
        return e2e.run_stack(
            generate,
            args.reports,
            args.rate,
            steady,
            Path(d),
            profile_dir=profile_dir,
            stall_s=args.stall,
            timeout_s=args.timeout,
        )


def _scaleout(args: argparse.Namespace) -> dict[str, Any]:
    from bench import scaleout
    from bench.reports import generate

    return scaleout.run(
        generate,
        args.reports,
        rounds=args.scaleout_rounds,
        stall_s=args.stall,
        timeout_s=args.timeout,
    )


def _read(args: argparse.Namespace) -> dict[str, Any]:
    from bench import read_side

    with tempfile.TemporaryDirectory(prefix="fq-bench-read-") as d:
        return read_side.run(args.cases, Path(d), repeats=args.read_requests)


def _broker() -> dict[str, Any]:
    ensure_broker()
    return {}


def new_doc(args: argparse.Namespace) -> dict[str, Any]:
    """The result document before any stage ran."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return {
        "started_at": stamp,
        "args": vars(args),
        "machine": machine(),
        "versions": versions(),
        "stages": {},
    }


def run_all(args: argparse.Namespace, doc: dict[str, Any]) -> dict[str, Any]:
    """Every stage not skipped, in order, filling the result document."""
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(STAGES)
    if unknown:
        raise SystemExit(f"unknown stage(s) in --skip: {sorted(unknown)}; known: {STAGES}")
    stamp = doc["started_at"]
    results = doc["stages"]
    if not {"ceiling", "e2e", "read", "scaleout"} <= skip:  # these need the broker
        stage(results, "broker", _broker)
    doc["broker"] = broker_settings()
    profile_dir = RESULTS / f"profile-{stamp}" if args.profile else None
    if "ceiling" not in skip:
        from bench import ceiling

        stage(results, "ceiling", lambda: ceiling.run(args.ceiling_messages))
    if "triage" not in skip:
        from bench import bench_triage

        stage(results, "triage", lambda: bench_triage.run(args.triage_decisions or args.reports))
    if "e2e" not in skip:
        stage(results, "e2e", lambda: _e2e(args, "steady" not in skip, profile_dir))
    if "read" not in skip:
        stage(results, "read", lambda: _read(args))
    if "scaleout" not in skip:
        stage(results, "scaleout", lambda: _scaleout(args))
    if "warnings" not in skip:
        from bench import warnings_cost

        stage(results, "warnings", lambda: warnings_cost.run(args.warning_cases))
    if profile_dir is not None:
        doc["profiles"] = str(profile_dir.relative_to(ROOT))
    return doc


# ---------------------------------------------------------------------------------------------
# The table


def _f(v: Any, unit: str = "") -> str:
    if v is None or v == "":
        return "—"
    if isinstance(v, float):
        v = f"{v:,.1f}"
    elif isinstance(v, int):
        v = f"{v:,}"
    return f"{v}{unit}"


SERVICE_ORDER = ("intake", "triage", "mediation", "followup")


def _pcts(lat: dict[str, Any]) -> str:
    return f"{_f(lat.get('p50'))} / {_f(lat.get('p95'))} / {_f(lat.get('p99'))} ms"


def _per_service(values: dict[str, Any], order: tuple[str, ...] = SERVICE_ORDER) -> str:
    parts = [f"{k} {_f(values[k])}" for k in order if k in values]
    return ", ".join(parts)


def _e2e_rows(label: str, r: dict[str, Any], ceiling: float | None) -> list[tuple[str, str]]:
    tp = r.get("throughput_per_s")
    done = f"{r.get('assigned')}/{r.get('submitted')} assigned"
    if r.get("merged"):
        done += f", {r['merged']} merged"
    if r.get("incomplete"):
        done += " — INCOMPLETE (stalled or timed out)"
    errs = r.get("submit_errors") or {}
    offered = r.get("offered_rate_per_s")
    rows = [
        (
            f"{label} offered",
            f"{_f(offered)}"
            + (" /s" if isinstance(offered, int | float) else "")
            + f", {r.get('reports')} reports ({r.get('via_http')} HTTP, "
            f"{r.get('via_kafka')} Kafka); load average "
            f"{'/'.join(str(x) for x in (r.get('load_average') or {}).get('start', []))}",
        ),
        (f"{label} throughput", f"{_f(tp)} cases/s to assignment ({done})"),
    ]
    if "throughput_all_per_s" in r:
        rows.append(
            (
                f"{label} … with ledger+feedback",
                f"{_f(r['throughput_all_per_s'])} cases/s ({r.get('in_ledger')} in the ledger, "
                f"{r.get('told_source')} sources told)",
            )
        )
    if ceiling and tp:
        mps = r.get("messages_per_s")
        rows.append(
            (
                f"{label} vs broker ceiling",
                f"ceiling {_f(ceiling)} msg/s this run; {tp / ceiling:.2%} in cases/s"
                + (f", {mps / ceiling:.1%} in messages/s ({_f(mps)} msg/s)" if mps else ""),
            )
        )
    rows.append((f"{label} →assigned p50/p95/p99", _pcts(r.get("latency_ms", {}))))
    if "latency_ledger_ms" in r:
        rows.append((f"{label} →ledger p50/p95/p99", _pcts(r["latency_ledger_ms"])))
        rows.append((f"{label} →feedback p50/p95/p99", _pcts(r["latency_feedback_ms"])))
    cpu = r.get("cpu_ms_per_case") or {}
    if cpu:
        rows.append(
            (
                f"{label} CPU ms/case",
                f"{_per_service(cpu)}; services {_f(cpu.get('services'))}"
                + (f"; broker {_f(cpu['kafka broker'])}" if "kafka broker" in cpu else "")
                + (
                    f" (JIT compiling {_f(cpu['kafka broker jit'])} of it)"
                    if cpu.get("kafka broker jit")
                    else ""
                )
                + (f"; PostgreSQL {_f(cpu['postgresql'])}" if "postgresql" in cpu else "")
                + (f"; bench client {_f(cpu['bench client'])}" if "bench client" in cpu else "")
                + f" ({r.get('cpu_utilisation')} of the cores)",
            )
        )
    above = r.get("cpu_ms_per_case_above_idle") or {}
    if above:
        idle = r.get("idle_cpu_ms_per_s") or {}
        rows.append(
            (
                f"{label} … above idle",
                f"{_per_service(above)}; services {_f(above.get('services'))} "
                f"(idle: {_per_service(idle)} CPU ms/s)",
            )
        )
    msgs = r.get("messages_per_case") or {}
    if msgs.get("by_topic"):
        rows.append(
            (
                f"{label} messages/case",
                f"{_f(msgs.get('services'))} by the services, {_f(msgs.get('total'))} in all: "
                + ", ".join(f"{t} {v}" for t, v in msgs["by_topic"].items()),
            )
        )
    if "checks" in r:
        c = r["checks"]
        rows.append(
            (
                f"{label} lost/doubled/disorder",
                f"{r.get('faults')} faults"
                + (": " + ", ".join(f"{k} {v}" for k, v in c.items()) if c else "")
                + (
                    f"; {r['feedback_copies']} feedback re-sends"
                    if r.get("feedback_copies")
                    else ""
                ),
            )
        )
    if errs:
        rows.append((f"{label} submit errors", json.dumps(errs)))
    deep = r.get("chaos_check")
    if deep:
        zero = (
            "lost",
            "doubled",
            "assigned_not_once",
            "out_of_order",
            "unverified",
            "status_mismatch",
            "feedback_out_of_order",
            "stuck",
            "lag",
            "dlq_mismatch",
        )
        rows.append(
            (
                f"{label} chaos.py check",
                ("ok" if deep["ok"] else "FAILED")
                + f" ({deep['cases']}/{deep['submitted']} cases): "
                + ", ".join(f"{k.replace('_', ' ')} {deep.get(k)}" for k in zero),
            )
        )
    return rows


def table(doc: dict[str, Any]) -> str:
    """The figures with the machine, versions and broker settings beside them."""
    m, v, b, s = doc["machine"], doc["versions"], doc.get("broker", {}), doc["stages"]
    rows: list[tuple[str, str]] = [
        (
            "machine",
            f"{m['cores']} cores ({m['usable_cores']} usable), {m['memory_gb']} GB, "
            f"{m['cpu']}, {m['os']}",
        ),
        (
            "versions",
            f"Python {v['python']}, aiokafka {v['aiokafka']}, Kafka {v['kafka']}, "
            f"FastAPI {v['fastapi']}, uvicorn {v['uvicorn']} (uvloop {v.get('uvloop', '?')}, "
            f"httptools {v.get('httptools', '?')}), SQLAlchemy {v['sqlalchemy']}",
        ),
        ("broker", ", ".join(f"{k}={x}" for k, x in b.items())),
        ("", ""),
    ]

    def failed(name: str) -> bool:
        r = s.get(name)
        if r is not None and not r["ok"]:
            rows.append((name, "FAILED: " + r["error"].splitlines()[0][:160]))
            return True
        return r is None

    failed("broker")
    ceiling = None
    if not failed("ceiling"):
        c = s["ceiling"]
        ceiling = c["ceiling_msgs_per_s"]
        rows += [
            (
                "ceiling produce",
                f"{_f(c['produce_msgs_per_s'])} msg/s "
                f"({c['produce_mb_per_s']} MB/s, {c['messages']:,} × "
                f"{c['message_bytes']} B, acks=all, idempotent)",
            ),
            (
                "ceiling consume",
                f"{_f(c['consume_msgs_per_s'])} msg/s (consumer group, commit per batch)",
            ),
        ]
    if not failed("triage"):
        t = s["triage"]
        rows.append(
            (
                "triage alone",
                f"{_f(t.get('decisions_per_s'))} decisions/s on one core "
                f"(p50 {t.get('p50_us')} µs, p99 {t.get('p99_us')} µs)",
            )
        )
    if not failed("e2e"):
        e = s["e2e"]
        rows += _e2e_rows("e2e full speed", e["full_speed"], ceiling)
        if "steady" in e:
            rows += _e2e_rows("e2e steady", e["steady"], ceiling)
    if not failed("read"):
        r = s["read"]
        rows.append(
            (
                "read ledger",
                f"{r['cases']:,} cases ({r['db_mb']} MB SQLite, loaded in {r['load_s']} s)",
            )
        )
        for name, q in r["queries"].items():
            val = q.get("error") or (
                f"p50 {_f(q['p50_ms'])} ms, p95 {_f(q['p95_ms'])} ms ({q['requests']} requests)"
            )
            rows.append((f"read {name}", val))
    if not failed("scaleout"):
        so = s["scaleout"]
        for k, run in so["runs"].items():
            rows += _e2e_rows(f"pg ×{k[1:]}", run["full_speed"], ceiling)
        for k, v in so.items():
            if not k.startswith("ratio_"):
                continue
            whole = k.startswith("ratio_all_")  # to the last ledger entry and feedback
            n = k.removeprefix("ratio_all_" if whole else "ratio_").split("_")[0][1:]
            key = "throughput_all_per_s" if whole else "throughput_per_s"
            rounds = so.get("rounds") or []
            by_round = [
                r[f"x{n}"][key] / r["x1"][key]
                for r in rounds
                if r[f"x{n}"].get(key) and r["x1"].get(key)
            ]
            label = f"pg ×{n} / ×1 throughput" + (" … with ledger+feedback" if whole else "")
            notes = [] if whole else ["≥ 0.9 wanted"]
            if len(rounds) > 1:
                notes.append(
                    f"{len(rounds)} rounds alternated: " + ", ".join(f"{x:.2f}×" for x in by_round)
                )
            value = f"{v:.2f}×" if v is not None else "—"
            rows.append((label, value + (f" ({'; '.join(notes)})" if notes else "")))
        for i, r in enumerate(so.get("rounds") or []):
            bad = [
                f"×{k[1:]} " + (f"faults {v['faults']}" if v["faults"] else "chaos.py check failed")
                for k, v in r.items()
                if v["faults"] or v["chaos_ok"] is False
            ]
            if i and bad:  # the first round's runs have rows of their own
                rows.append((f"pg round {i + 1} FAILED", ", ".join(bad)))
        if "crowding" in so:
            c = so["crowding"]
            rows.append(
                (
                    "crowded cores, CPU per decision",
                    "; ".join(
                        f"{name} {_f(c[name]['us'])} µs ({c[name]['ratio']:.2f}×, "
                        f"{busy} busy beside)"
                        for name, busy in c["busy_beside"].items()
                    ),
                )
            )
    if not failed("warnings"):
        w = s["warnings"]
        for name, v in w["variants"].items():
            rows.append(
                (
                    f"ledger event, {name}",
                    f"{_f(v['us_per_event'])} µs CPU/event (+{_f(v['extra_us_per_event'])}; "
                    f"by batch of {w['cases'] // 3:,} cases: "
                    f"{', '.join(str(x) for x in v['us_per_event_by_batch'])}; "
                    f"{v['warnings_raised']} warnings)",
                )
            )
        if "scan" in w:
            sc = w["scan"]
            rows.append(
                (
                    f"warning scan, {sc['open_cases']:,} open cases",
                    "; ".join(
                        f"{name} {_f(v['ms'])} ms CPU ({v['changes']} changes)"
                        for name, v in sc.items()
                        if name != "open_cases"
                    ),
                )
            )
    width = max(len(k) for k, _ in rows)
    lines = [f"Fengqiao bench {doc['started_at']}"]
    lines += [f"{k:<{width}}  {val}" if k else "" for k, val in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write bench/results/<timestamp>.json."""
    args = parse_args(argv)
    # `cmd &` in a script starts us with SIGINT ignored; SIGTERM should clean up too
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    doc = new_doc(args)
    try:
        run_all(args, doc)
    except KeyboardInterrupt:
        doc["interrupted"] = True
        print("[bench] interrupted: services stopped; writing what was measured", file=sys.stderr)
    doc["finished_at"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = table(doc)
    doc["table"] = text
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-{doc['started_at']}.json"
    out.write_text(json.dumps(doc, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    print(text)
    print(f"\nresults: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
