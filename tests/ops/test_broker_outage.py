"""A broker outage under the running services: few log lines, idle CPU, a prompt SIGTERM.

The broker is stopped for FENGQIAO_OUTAGE_S seconds (default 60; CI may shorten it: the
assertions are rates per minute). During the outage a report arrives, so intake's relay has
an outbox row it cannot publish when SIGTERM comes.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.ops.conftest import OwnBroker
from tests.ops.processes import run_services

pytestmark = pytest.mark.kafka

OUTAGE_S = float(os.environ.get("FENGQIAO_OUTAGE_S", "60"))
MAX_LINES_PER_MINUTE = 100
MAX_CPU_SHARE = 0.10  # of one core
GRACE_S = 10


def test_broker_outage_costs_few_log_lines_no_cpu_and_sigterm_still_stops(
    own_broker: OwnBroker, tmp_path: Path
) -> None:
    prefix = f"o{uuid.uuid4().hex[:8]}."
    with run_services(tmp_path, own_broker.bootstrap, prefix) as fleet:
        lines0 = {s.name: len(s.log_lines()) for s in fleet}
        cpu0 = {s.name: s.cpu_seconds() for s in fleet}
        t0 = time.monotonic()
        own_broker.kafka_sh("stop")
        answer = httpx.post(
            f"{fleet['intake'].url}/v1/reports",
            headers={"X-API-Key": fleet.keys["grid"]},
            json={"source": "grid", "source_ref": "OUTAGE-1", "text": "楼上漏水，邻居争吵。"},
            timeout=30,
        )
        assert answer.status_code == 202, answer.text  # accepted into the outbox
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t0)))  # the outage itself
        elapsed = time.monotonic() - t0

        report = {}
        for svc in fleet:
            lines = len(svc.log_lines()) - lines0[svc.name]
            cpu = svc.cpu_seconds() - cpu0[svc.name]
            report[svc.name] = {
                "lines": lines,
                # a shortened outage still counts its first burst: the rate errs high
                "lines_per_min": round(lines * 60 / min(elapsed, 60), 1),
                "cpu_share": round(cpu / elapsed, 4),
            }
        stopped = {svc.name: svc.terminate(timeout=GRACE_S + 5) for svc in fleet}
        print(json.dumps({"outage_s": round(elapsed, 1), "services": report, "stop_s": stopped}))

        for name, r in report.items():
            assert r["lines_per_min"] < MAX_LINES_PER_MINUTE, (name, r)
            assert r["cpu_share"] < MAX_CPU_SHARE, (name, r)
        for svc in fleet:
            took = stopped[svc.name]
            assert took is not None and took < GRACE_S, (svc.name, took)
            # uvicorn re-raises the SIGTERM it handled once shutdown completed
            assert svc.proc.returncode in (0, -15), (svc.name, svc.log_lines()[-5:])
            assert not any("shutdown failed" in line for line in svc.log_lines()), svc.name
