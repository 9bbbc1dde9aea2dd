"""`make run` as an operator uses it: services up, demo credentials written, a sample report
posted over HTTP shows up as triaged within seconds, Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.kafka

PORT_BASE = 18101


def test_run_script_brings_the_system_up_and_a_sample_gets_triaged(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, samples: list[dict[str, Any]]
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FENGQIAO_", "INTAKE_", "TRIAGE_", "MEDIATION_", "FOLLOWUP_"))
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "scripts" / "run.py"),
            "--port-base",
            str(PORT_BASE),
            "--data-dir",
            str(tmp_path),
            "--topic-prefix",
            topic_prefix,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, killed whole if it hangs
    )
    out: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(out)
        assert "Ctrl-C stops everything" in text, text
        assert "NOT READY" not in text, text

        creds = json.loads((tmp_path / "demo-credentials.json").read_text())
        assert set(creds["integrators"]) == {"110", "12345", "grid"}
        roles = {s["role"] for s in creds["staff"]}
        assert {"mediator", "coordinator", "viewer"} <= roles
        assert all(s["token"] for s in creds["staff"])
        assert all(s["channel"] for s in creds["staff"] if s["role"] == "mediator")

        report = {k: v for k, v in samples[0].items() if k not in ("expected", "why")}
        key = creds["integrators"][report["source"]]["api_key"]
        base = f"http://127.0.0.1:{PORT_BASE}"
        r = httpx.post(f"{base}/v1/reports", json=report, headers={"X-API-Key": key})
        assert r.status_code == 202, r.text
        case_id = r.json()["case_id"]
        status = None
        for _ in range(100):
            s = httpx.get(
                f"{base}/v1/reports/{report['source']}/{report['source_ref']}",
                headers={"X-API-Key": key},
            ).json()
            status = s.get("status")
            if status not in (None, "received"):
                break
            time.sleep(0.2)
        assert status in ("triaged", "assigned"), status
        viewer = next(s["token"] for s in creds["staff"] if s["role"] == "viewer")
        # the ledger reads the same trail as intake's status, on its own consumer: it may lag
        for _ in range(150):
            ledger = httpx.get(
                f"http://127.0.0.1:{PORT_BASE + 3}/v1/cases/{case_id}",
                headers={"Authorization": f"Bearer {viewer}"},
            )
            if ledger.status_code == 200:
                break
            time.sleep(0.2)
        assert ledger.status_code == 200 and ledger.json()["case_id"] == case_id
        for port in range(PORT_BASE, PORT_BASE + 4):
            assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the services too: none left running
            raise
    assert rc == 0
    for port in range(PORT_BASE, PORT_BASE + 4):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
