"""A broker of the ops tests' own (on other ports), which they may stop under the services."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import REPO


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
        subprocess.run(
            ["bash", str(REPO / "scripts" / "kafka.sh"), command],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=180,
        )


@pytest.fixture
def own_broker() -> Iterator[OwnBroker]:
    """Start a broker on FENGQIAO_OPS_KAFKA_PORT (default 19392, controller +1); stop it after."""
    port = int(os.environ.get("FENGQIAO_OPS_KAFKA_PORT", "19392"))
    run_dir = REPO / ".run" / f"kafka-ops-{port}-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(port + 1),
        "KAFKA_RUN_DIR": str(run_dir),
    }
    broker = OwnBroker(port, env)
    broker.kafka_sh("start")
    try:
        yield broker
    finally:
        broker.kafka_sh("stop")
        shutil.rmtree(run_dir, ignore_errors=True)
