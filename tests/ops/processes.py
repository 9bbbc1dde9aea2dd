"""The four services as real processes (uvicorn, as in production), for the ops tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.intake.seed import seed_demo as seed_intake
from services.intake.settings import IntakeSettings
from services.mediation.seed import seed_demo as seed_mediation
from services.mediation.settings import MediationSettings
from tests.conftest import REPO

SERVICES = ("intake", "triage", "mediation", "followup")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    """One running service: its process, port and log file."""

    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        """Every line the service wrote so far."""
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()

    def cpu_seconds(self) -> float:
        """User + system CPU time the process used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def terminate(self, timeout: float) -> float | None:
        """SIGTERM, wait; seconds it took to exit, or None (then it is killed)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        return time.monotonic() - t0


@dataclass
class Fleet:
    """The four services, and the demo credentials seeded before they started."""

    services: dict[str, ServiceProcess] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    staff: list[dict[str, Any]] = field(default_factory=list)

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def __iter__(self) -> Iterator[ServiceProcess]:
        return iter(self.services.values())


def wait_ready(url: str, timeout: float = 90) -> bool:
    """Poll /readyz until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.3)
    return False


@contextmanager
def run_services(
    data_dir: Path, bootstrap: str, prefix: str, extra_env: dict[str, str] | None = None
) -> Iterator[Fleet]:
    """Start the four services on SQLite in data_dir against the broker; stop them after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FENGQIAO_", "OTEL_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "FENGQIAO_KAFKA_BOOTSTRAP": bootstrap,
            "FENGQIAO_DEV_MODE": "true",  # the published dev keys
            "FENGQIAO_TOPIC_PREFIX": prefix,
            "FENGQIAO_GROUP_PREFIX": prefix,
            "FENGQIAO_KAFKA_PARTITIONS": os.environ.get("FENGQIAO_KAFKA_PARTITIONS", "3"),
            **(extra_env or {}),
        }
    )
    fleet = Fleet()
    for name in SERVICES:
        env[f"{name.upper()}_DATABASE_URL"] = f"sqlite+aiosqlite:///{data_dir / name}.db"
    intake_keys = asyncio.run(seed_intake(IntakeSettings(database_url=env["INTAKE_DATABASE_URL"])))
    fleet.keys = {source: v["api_key"] for source, v in intake_keys.items()}
    fleet.staff = asyncio.run(
        seed_mediation(MediationSettings(database_url=env["MEDIATION_DATABASE_URL"]))
    )
    try:
        for name in SERVICES:
            port = free_port()
            log = data_dir / f"{name}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        f"services.{name}.main:create_app",
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ],
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            fleet.services[name] = ServiceProcess(name, port, log, proc)
        for svc in fleet:
            assert wait_ready(svc.url), f"{svc.name} not ready:\n" + "\n".join(
                svc.log_lines()[-20:]
            )
        yield fleet
    finally:
        for svc in fleet:
            if svc.proc.poll() is None:
                svc.proc.kill()
                svc.proc.wait()
