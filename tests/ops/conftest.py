"""A broker of the ops tests' own (on other ports), which they may stop under the services."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.ops.processes import free_port


@dataclass
class OwnBroker:
    """A single-node broker started by scripts/kafka.sh with its own ports and run directory."""

    port: int
    env: dict[str, str]

    @property
    def bootstrap(self) -> str:
        """host:port for clients."""
        return f"127.0.0.1:{self.port}"

    def kafka_sh(self, command: str) -> None:
        """Run scripts/kafka.sh COMMAND on this broker."""
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / "kafka.sh"), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, f"kafka.sh {command}: {done.stdout}\n{done.stderr}"


@pytest.fixture
def own_broker() -> Iterator[OwnBroker]:
    """Start a broker on free ports (or FENGQIAO_OPS_KAFKA_PORT, controller +1); stop it after.

    Never the shared broker's ports: the test stops this one under running services.
    """
    fixed = os.environ.get("FENGQIAO_OPS_KAFKA_PORT")
    port, controller = (int(fixed), int(fixed) + 1) if fixed else (free_port(), free_port())
    while controller == port:
        controller = free_port()
    run_dir = REPO / ".run" / f"kafka-ops-{port}-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_RUN_DIR": str(run_dir),
    }
    broker = OwnBroker(port, env)
    try:
        broker.kafka_sh("start")
        yield broker
    finally:
        broker.kafka_sh("stop")
        shutil.rmtree(run_dir, ignore_errors=True)


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of one test's own, started by a copy of scripts/pg.sh."""

    port: int
    env: dict[str, str]
    script: Path

    def pg(self, command: str) -> str:
        """Run pg.sh COMMAND; its stdout."""
        done = subprocess.run(
            ["bash", str(self.script), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    @property
    def bindir(self) -> str:
        """Where the server's binaries (psql, …) are."""
        return sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1].as_posix()


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PrivatePostgres]:
    """Start a throwaway server on a free port from a 0700 directory; stop and remove it after."""
    private = tmp_path / "priv"
    private.mkdir(mode=0o700)
    (private / "fengqiao" / "scripts").mkdir(parents=True)
    script = private / "fengqiao" / "scripts" / "pg.sh"
    shutil.copy(REPO / "scripts" / "pg.sh", script)
    env = {k: v for k, v in os.environ.items() if k != "PG_DIR"}
    env["PG_PORT"] = str(free_port())
    server = PrivatePostgres(int(env["PG_PORT"]), env, script)
    base = Path(server.pg("dir"))
    try:
        server.pg("start")
        yield server
    finally:
        server.pg("stop")
        if os.geteuid() == 0:
            shutil.rmtree(base, ignore_errors=True)
