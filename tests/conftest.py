"""Fixtures shared by every test layer.

- `kafka_bootstrap`: the real broker, started once per session by scripts/kafka.sh.
- `topic_prefix`: fresh topic names (and consumer groups) for each test.
- `memory_bus`: the in-memory bus for unit tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.bus import InMemoryBus
from tests import fuzzing

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SAMPLES = SHARED / "samples" / "reports.jsonl"
BOOTSTRAP = os.environ.get("FENGQIAO_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
# dev mode is off by default (a deployment never runs in it); the tests turn it on explicitly,
# so the services accept the published dev keys. tests/unit/security checks the refusals.
os.environ["FENGQIAO_DEV_MODE"] = "true"
# a response body with a key its model does not declare fails the request (shared/responses.py)
os.environ["FENGQIAO_STRICT_BODIES"] = "1"
# Every test makes fresh topics: 3 partitions each, not the production default of 12, keeps
# the shared test broker small.
os.environ.setdefault("FENGQIAO_KAFKA_PARTITIONS", "3")
fuzzing.load_profile()  # property and fuzz tests: the same examples each run unless hunting


def _port_open(hostport: str) -> bool:
    host, port = hostport.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Apache Kafka broker; started here unless one already answers."""
    started = False
    if not _port_open(BOOTSTRAP):
        subprocess.run(["bash", str(REPO / "scripts" / "kafka.sh"), "start"], check=True)
        started = True
    yield BOOTSTRAP
    if started and os.environ.get("FENGQIAO_KEEP_BROKER") != "1":
        subprocess.run(["bash", str(REPO / "scripts" / "kafka.sh"), "stop"], check=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A local PostgreSQL server (scripts/pg.sh); yields its admin URL."""
    script = str(REPO / "scripts" / "pg.sh")
    was_running = subprocess.run(["bash", script, "status"], capture_output=True).returncode == 0
    subprocess.run(["bash", script, "start"], check=True)
    url = subprocess.run(
        ["bash", script, "url"], check=True, capture_output=True, text=True
    ).stdout.strip()
    yield url
    if not was_running and os.environ.get("FENGQIAO_KEEP_PG") != "1":
        subprocess.run(["bash", script, "stop"], check=False)


@pytest.fixture
async def pg_url(pg_server: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = pg_server.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield pg_server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def topic_prefix() -> str:
    """A unique prefix so each test gets its own topics and consumer groups."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
async def memory_bus() -> AsyncIterator[InMemoryBus]:
    """The in-memory bus, stopped after the test."""
    bus = InMemoryBus()
    yield bus
    await bus.stop()


@pytest.fixture
def samples() -> list[dict[str, object]]:
    """The labelled sample reports from ../shared/samples."""
    import json

    return [
        json.loads(line)
        for line in SAMPLES.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
