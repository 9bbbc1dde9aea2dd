"""The four services and the console as processes (scripts/run.py), with a seeded demo county,
fresh topics and free ports; plus helpers to file reports and wait on the APIs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port_base(count: int = 5) -> int:
    """A base port with `count` free ports after it."""
    for base in range(21101, 29000, 10):
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free ports for the stack")


@dataclass
class Stack:
    """A running `scripts/run.py`: URLs of the services and the console, demo credentials."""

    base: int
    data: Path
    proc: subprocess.Popen[str]
    creds: dict[str, Any] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)

    def url(self, name: str) -> str:
        """Base URL of intake, triage, mediation, followup or console."""
        order = ["intake", "triage", "mediation", "followup", "console"]
        return f"http://127.0.0.1:{self.base + order.index(name)}"

    def token(self, staff_id: str) -> str:
        """A seeded member of staff's bearer token."""
        return str(next(s["token"] for s in self.creds["staff"] if s["staff_id"] == staff_id))

    def headers(self, staff_id: str) -> dict[str, str]:
        """Authorization header of a seeded member of staff."""
        return {"Authorization": f"Bearer {self.token(staff_id)}"}

    def report(
        self,
        text: str,
        grid_code: str,
        phone: str,
        *,
        parties: list[dict[str, str]] | None = None,
        where: tuple[float, float] | None = None,
    ) -> str:
        """File a grid report through intake's API; the case id."""
        key = self.creds["integrators"]["grid"]["api_key"]
        location: dict[str, Any] = {"grid_code": grid_code, "address": "南溪县城关镇东街社区"}
        if where:
            location |= {"lat": where[0], "lon": where[1]}
        ref = f"BR-{uuid.uuid4().hex[:12]}"
        r = httpx.post(
            f"{self.url('intake')}/v1/reports",
            headers={"X-API-Key": key},
            json={
                "source": "grid",
                "source_ref": ref,
                "text": text,
                "location": location,
                "reporter": {"name": "雷春燕", "phone": "17306228888", "role": "grid_worker"},
                "parties": parties
                or [
                    {"name": "张建华", "phone": phone, "role": "applicant"},
                    {"name": "李桂芳", "role": "respondent"},
                ],
            },
            timeout=30,
        )
        assert r.status_code == 202, r.text
        self.refs[str(r.json()["case_id"])] = ref
        return str(r.json()["case_id"])

    def typed_in_intake(self, case_id: str) -> None:
        """Wait until intake knows the case's type (a later report of the same party is then a
        case of its own unless it is the same dispute)."""
        key = self.creds["integrators"]["grid"]["api_key"]

        def probe() -> bool:
            r = httpx.get(
                f"{self.url('intake')}/v1/reports/grid/{self.refs[case_id]}",
                headers={"X-API-Key": key},
                timeout=10,
            )
            return r.status_code == 200 and r.json()["dispute_type"] is not None

        eventually(probe, what=f"{case_id} typed in intake")

    def stop(self) -> None:
        """SIGTERM run.py (it stops the services), then wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_stack(data: Path, topic_prefix: str, extra_env: dict[str, str] | None = None) -> Stack:
    """Run scripts/run.py on free ports and wait for 'Ctrl-C stops everything'."""
    base = free_port_base()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FENGQIAO_", "INTAKE_", "TRIAGE_", "MEDIATION_", "FOLLOWUP_"))
        and not k.startswith("CONSOLE_")
    }
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "scripts" / "run.py"),
            "--port-base",
            str(base),
            "--data-dir",
            str(data),
            "--topic-prefix",
            topic_prefix,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack = Stack(base, data, proc)
    assert proc.stdout is not None
    deadline = time.monotonic() + 900  # run.py waits up to 180 s per service on a busy box
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        stack.output.append(line)
        if "Ctrl-C stops everything" in line:
            break
    text = "".join(stack.output)
    if "Ctrl-C stops everything" not in text or "NOT READY" in text:
        stack.stop()
        raise RuntimeError(f"the stack did not come up:\n{text}")
    stack.creds = json.loads((data / "demo-credentials.json").read_text(encoding="utf-8"))
    return stack


def eventually(probe: Callable[[], T | None], timeout: float = 90, what: str = "condition") -> T:
    """Poll a probe until it returns something truthy (the services work asynchronously)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


def case_in_mediation(stack: Stack, staff_id: str, case_id: str, status: str) -> dict[str, Any]:
    """Wait until mediation shows the case to this person in this status."""

    def probe() -> dict[str, Any] | None:
        r = httpx.get(
            f"{stack.url('mediation')}/v1/mediation/cases/{case_id}",
            headers=stack.headers(staff_id),
            timeout=10,
        )
        return r.json() if r.status_code == 200 and r.json()["status"] == status else None

    return eventually(probe, what=f"case {case_id} {status} in mediation")


def case_in_ledger(stack: Stack, staff_id: str, case_id: str, status: str) -> dict[str, Any]:
    """Wait until the ledger shows the case to this person in this status."""

    def probe() -> dict[str, Any] | None:
        r = httpx.get(
            f"{stack.url('followup')}/v1/cases/{case_id}",
            headers=stack.headers(staff_id),
            timeout=10,
        )
        return r.json() if r.status_code == 200 and r.json()["status"] == status else None

    return eventually(probe, what=f"case {case_id} {status} in the ledger")
