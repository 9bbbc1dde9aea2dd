"""The capacity model's arithmetic (bench/capacity.py) and the bench table's new rows, from a
bench JSON shaped like the ones `make bench` writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import capacity, run


def doc() -> dict[str, Any]:
    """A bench result: 40 ms of CPU per case in all, 8 messages per case, 10,000 msg/s."""
    cpu = {"intake": 16.0, "triage": 8.0, "mediation": 8.0, "followup": 8.0}
    full = {
        "offered_rate_per_s": "full speed",
        "reports": 100,
        "submitted": 100,
        "via_http": 50,
        "via_kafka": 50,
        "assigned": 100,
        "in_ledger": 100,
        "told_source": 100,
        "throughput_per_s": 40.0,
        "throughput_all_per_s": 30.0,
        "messages_per_s": 400.0,
        "load_average": {"start": [1.5, 1.0, 0.5]},
        "latency_ms": {"p50": 10.0, "p95": 20.0, "p99": 30.0},
        "latency_ledger_ms": {"p50": 11.0, "p95": 21.0, "p99": 31.0},
        "latency_feedback_ms": {"p50": 12.0, "p95": 22.0, "p99": 32.0},
        "cpu_ms_per_case": {**cpu, "kafka broker": 2.0, "services": 40.0},
        "cpu_utilisation": "80%",
        "cpu_ms_per_case_above_idle": {"intake": 12.0, "services": 30.0},
        "idle_cpu_ms_per_s": {"intake": 40.0},
        "messages_per_case": {
            "by_topic": {"cases.trail": 3.0, "reports.received": 1.0, "source.110.reports": 0.5},
            "services": 8.0,
            "total": 8.5,
        },
        "checks": {},
        "faults": 0,
    }
    pg1 = dict(full, cpu_ms_per_case={**full["cpu_ms_per_case"], "postgresql": 6.0})
    pg2 = dict(full, checks={"lost (no case)": 1}, faults=1)
    pg2["chaos_check"] = {
        "ok": False,
        "cases": 99,
        "submitted": 100,
        **dict.fromkeys(
            (
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
            ),
            0,
        ),
    }
    pg2["chaos_check"]["lost"] = 1
    return {
        "started_at": "20261130T000000Z",
        "machine": {"cores": 2, "usable_cores": 2, "memory_gb": 1, "cpu": "x", "os": "y"},
        "versions": dict.fromkeys(
            ("python", "aiokafka", "kafka", "fastapi", "uvicorn", "sqlalchemy"), "1"
        ),
        "broker": {},
        "stages": {
            "ceiling": {
                "ok": True,
                "ceiling_msgs_per_s": 10_000.0,
                "produce_msgs_per_s": 10_000.0,
                "produce_mb_per_s": 15,
                "messages": 1000,
                "message_bytes": 1536,
                "consume_msgs_per_s": 40_000.0,
            },
            "e2e": {"ok": True, "full_speed": full},
            "scaleout": {
                "ok": True,
                "runs": {"x1": {"full_speed": pg1}, "x2": {"full_speed": pg2}},
                "ratio_x2_to_x1": 1.0,
                "crowding": {
                    "cores": 2,
                    "busy_beside": {"alone": 0, "cores full": 1, "crowded": 7},
                    "alone": {"us": 1000, "ratio": 1.0},
                    "cores full": {"us": 1050, "ratio": 1.05},
                    "crowded": {"us": 1600, "ratio": 1.6},
                },
            },
        },
    }


def test_a_province_at_its_peak() -> None:
    m = capacity.inputs(doc())
    p = capacity.plan(capacity.Scope("province", 30_000_000), m)
    peak = 30_000_000 / capacity.YEAR_S * 20  # ≈ 19 reports/s
    assert p["peak_per_s"] == round(peak, 2)
    # intake: peak × life 3 × 16 ms / 60 % target
    assert p["cores"]["intake"] == round(peak * 3 * 16 / 1000 / 0.6, 2)
    assert p["cores_total"] == round(peak * 3 * 40 / 1000 / 0.6, 1)
    # PostgreSQL's 6 ms per case of the pg ×1 run, on top
    assert p["database_cores"] == round(peak * 3 * 6 / 1000 / 0.6, 2)
    assert p["instances"] == {"intake": 2, "triage": 2, "mediation": 2, "followup": 2}
    assert p["partitions"] == 12
    assert p["messages_per_s_peak"] == round(peak * 3 * 8, 1)
    assert p["brokers"] == 3  # replication, not throughput, sets the count


def test_a_large_scope_needs_more_instances_partitions_and_brokers() -> None:
    m = capacity.inputs(doc())
    p = capacity.plan(capacity.Scope("huge", 3_000_000_000), m)  # 100× the province
    assert p["instances"]["intake"] == 153  # ⌈1902.6 × 3 × 16 / 1000 / 0.6⌉ = ⌈152.2⌉
    assert p["partitions"] == 2 * 153
    # 1902.6/s × 3 × 8 messages × 3 replicas over 30 % of 10,000 msg/s
    assert p["brokers"] == 46


def test_the_capacity_table_reads_a_bench_json(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc()), encoding="utf-8")
    assert capacity.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "sum 40.0" in out and "| province | 30,000,000 |" in out
    assert "PostgreSQL 6.0 ms/case" in out
    assert out.count("\n| ") == len(capacity.SCOPES) + 1  # one row per scope after the rule


def test_the_table_prints_every_figure_the_issue_asks_for() -> None:
    text = run.table(doc())
    for expected in (
        "e2e full speed →assigned p50/p95/p99   10.0 / 20.0 / 30.0 ms",
        "e2e full speed →ledger p50/p95/p99     11.0 / 21.0 / 31.0 ms",
        "e2e full speed →feedback p50/p95/p99   12.0 / 22.0 / 32.0 ms",
        "ceiling 10,000.0 msg/s this run; 0.40% in cases/s, 4.0% in messages/s",
        "intake 16.0, triage 8.0, mediation 8.0, followup 8.0; services 40.0; broker 2.0",
        "8.0 by the services, 8.5 in all: cases.trail 3.0",
        "load average 1.5/1.0/0.5",
        "e2e full speed … above idle            intake 12.0; services 30.0 (idle: intake 40.0",
        "pg ×2 lost/doubled/disorder",
        "1 faults: lost (no case) 1",
        "FAILED (99/100 cases): lost 1, doubled 0",
        "pg ×2 / ×1 throughput",
        "crowded 1,600 µs (1.60×, 7 busy beside)",
    ):
        assert expected in text, expected


def test_without_a_postgresql_run_the_database_cores_are_unknown() -> None:
    d = doc()
    del d["stages"]["scaleout"]
    m = capacity.inputs(d)
    assert m["postgresql_cpu_ms"] is None
    assert capacity.plan(capacity.Scope("province", 30_000_000), m)["database_cores"] is None
    assert "| 3.8 | — | 2/2/2/2 |" in capacity.table(m)  # cores, no database figure, instances


def test_the_scale_out_rounds_are_printed_and_a_later_failed_round_shows() -> None:
    d = doc()
    so = d["stages"]["scaleout"]
    ok = {"faults": 0, "chaos_ok": True}
    so["rounds"] = [
        {"x1": {"throughput_per_s": 100.0, **ok}, "x2": {"throughput_per_s": 70.0, **ok}},
        {
            "x1": {"throughput_per_s": 100.0, **ok},
            "x2": {"throughput_per_s": 90.0, "faults": 0, "chaos_ok": False},
        },
    ]
    so["ratio_x2_to_x1"] = 0.8
    so["rounds"][0]["x1"]["throughput_all_per_s"] = 80.0
    so["rounds"][0]["x2"]["throughput_all_per_s"] = 76.0
    so["rounds"][1]["x1"]["throughput_all_per_s"] = 80.0
    so["rounds"][1]["x2"]["throughput_all_per_s"] = 80.0
    so["ratio_all_x2_to_x1"] = 0.97
    text = run.table(d)
    assert "0.80× (≥ 0.9 wanted; 2 rounds alternated: 0.70×, 0.90×)" in text
    [whole] = [line for line in text.splitlines() if "×1 throughput … with ledger" in line]
    assert whole.endswith(" 0.97× (2 rounds alternated: 0.95×, 1.00×)")
    assert "pg round 2 FAILED" in text and "×2 chaos.py check failed" in text
    so["rounds"][1]["x2"]["chaos_ok"] = True
    assert "pg round 2" not in run.table(d)


def test_the_scale_out_ratio_is_of_the_throughputs_summed_over_rounds() -> None:
    from bench.scaleout import throughput_ratio

    rounds = [
        {"x1": {"throughput_per_s": 100.0}, "x2": {"throughput_per_s": 70.0}},
        {"x1": {"throughput_per_s": 300.0}, "x2": {"throughput_per_s": 250.0}},
    ]
    assert throughput_ratio(rounds, "x2") == 0.8  # 320 / 400, not the mean of 0.70 and 0.83
    for r, (one, two) in zip(rounds, ((90.0, 90.0), (210.0, 180.0)), strict=True):
        r["x1"]["throughput_all_per_s"], r["x2"]["throughput_all_per_s"] = one, two
    assert throughput_ratio(rounds, "x2", key="throughput_all_per_s") == 0.9  # 270 / 300
    rounds[1]["x2"]["throughput_per_s"] = None  # a run that assigned nothing
    assert throughput_ratio(rounds, "x2") is None
