"""The fault-injection run at CI size: services SIGKILLed, the broker killed for a while,
poison and replayed records — every report still ends as exactly one case, in causal order.

It starts its own broker on other ports (scripts/chaos.py) and never touches the shared one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.scaleout import load_chaos

pytestmark = pytest.mark.kafka


async def test_a_small_chaos_run_loses_doubles_and_disorders_nothing(tmp_path: Path) -> None:
    chaos = load_chaos()
    cfg = chaos.Config(  # type: ignore[attr-defined]
        reports=int(os.environ.get("CHAOS_REPORTS", "60")),
        rate=6.0,
        kills=3,
        kill_every_s=3.0,
        broker_outage_s=20.0,
        kafka_port=int(os.environ.get("CHAOS_KAFKA_PORT", "19492")),
        controller_port=int(os.environ.get("CHAOS_CONTROLLER_PORT", "19493")),
        drain_timeout_s=300.0,
        workdir=tmp_path,
    )
    result = await chaos.run(cfg)  # type: ignore[attr-defined]
    # on failure the message names each failing case: its count, both statuses, its trail
    report = result.report()
    print(report)
    assert result.submitted == cfg.reports and result.cases == cfg.reports, report
    assert result.kills == 3 and result.broker_outage_s >= 20.0, report
    zero = {k: getattr(result, k) for k in result.ZERO}
    assert zero == dict.fromkeys(result.ZERO, 0), report
    # the broker held this run's topics only: one restart recovers one run's partitions
    assert chaos.prefixes_on_broker(cfg) == {result.prefix}  # type: ignore[attr-defined]


def test_a_run_starts_its_broker_without_the_data_of_earlier_runs(tmp_path: Path) -> None:
    """Earlier runs' topics made each restart after the outage slower, until it outlasted
    kafka.sh's 90 s under load (the flaky run); a run now deletes them before it starts."""
    chaos = load_chaos()
    cfg = chaos.Config(kafka_port=19899, controller_port=19898)  # type: ignore[attr-defined]
    data = chaos.chaos_run_dir(cfg) / "data"  # type: ignore[attr-defined]
    for name in ("chaos0ld001.cases.trail-0", "chaos0ld002.reports.received-3"):
        (data / name).mkdir(parents=True, exist_ok=True)
        (data / name / "00000000000000000000.log").write_bytes(b"x" * 100)
    assert chaos.prefixes_on_broker(cfg) == {"chaos0ld001.", "chaos0ld002."}  # type: ignore[attr-defined]
    chaos.broker_reset(cfg)  # type: ignore[attr-defined]
    assert not data.exists()
    assert chaos.prefixes_on_broker(cfg) == set()  # type: ignore[attr-defined]
    shutil.rmtree(chaos.chaos_run_dir(cfg))  # type: ignore[attr-defined]


def test_a_failing_run_names_the_case_its_statuses_and_its_trail() -> None:
    """What a nonzero count found is in the report: which case, which count, the trail."""
    chaos = load_chaos()
    line = chaos.describe_case(  # type: ignore[attr-defined]
        "out_of_order",
        "CH-1",
        "c1",
        {"mediation": "assigned", "ledger": "triaged"},
        [
            {
                "seq": 1,
                "action": "receive",
                "from_status": None,
                "to_status": "received",
                "producer": "intake",
                "event_id": "e1",
            },
            {
                "seq": 2,
                "action": "assign",
                "from_status": "triaged",
                "to_status": "assigned",
                "producer": "mediation",
                "event_id": "e3",
            },
        ],
        ["received", "assigned"],
    )
    result = chaos.Result(out_of_order=1, found=[line], notes=["service logs: /tmp/x"])  # type: ignore[attr-defined]
    report = result.report()
    assert "out of order              1" in report
    for said in (
        "out_of_order: CH-1 case c1 mediation=assigned ledger=triaged",
        "2:assign triaged→assigned by mediation",
        "feedback: received, assigned",
        "service logs: /tmp/x",
    ):
        assert said in report, said
    assert not result.ok()


def test_records_are_counted_against_distinct_events() -> None:
    """A re-sent event counts once; a poison record (not an event) counts for none."""
    chaos = load_chaos()

    class Rec:
        def __init__(self, topic: str, value: bytes) -> None:
            self.topic, self.value = topic, value

    records = [
        Rec("p.cases.trail", b'{"event_id": "a"}'),
        Rec("p.cases.trail", b'{"event_id": "a"}'),
        Rec("p.cases.trail", b'{"event_id": "b"}'),
        Rec("p.cases.trail", b"\x00chaos-poison \xff\xfe"),
        Rec("p.cases.triaged", b'{"event_id": "c"}'),
    ]
    assert chaos.distinct_events(records, "p.") == {"cases.trail": 2, "cases.triaged": 1}  # type: ignore[attr-defined]
