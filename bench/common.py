"""What every stage shares: the machine, versions, broker settings, percentiles, the broker."""

from __future__ import annotations

import math
import os
import platform
import re
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "samples" / "reports.jsonl"
BOOTSTRAP = os.environ.get("FENGQIAO_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
BROKER_KEYS = (
    "num.partitions",
    "default.replication.factor",
    "min.insync.replicas",
    "num.network.threads",
    "num.io.threads",
    "log.segment.bytes",
    "offsets.topic.num.partitions",
    "group.initial.rebalance.delay.ms",
)


def machine() -> dict[str, Any]:
    """Cores, memory and CPU model of this machine."""
    mem_kb = 0
    model = platform.processor() or ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": model,
        "os": f"{platform.system()} {platform.release()}",
    }


def versions() -> dict[str, str]:
    """Python, the client libraries and the Kafka broker version (infra/kafka/pom.xml)."""
    out = {"python": sys.version.split()[0]}
    pkgs = ("aiokafka", "fastapi", "uvicorn", "uvloop", "httptools", "sqlalchemy", "aiosqlite")
    for pkg in (*pkgs, "httpx", "pydantic"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "?"
    try:
        pom = (ROOT / "infra" / "kafka" / "pom.xml").read_text(encoding="utf-8")
        m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
        out["kafka"] = m.group(1) if m else "?"
    except OSError:
        out["kafka"] = "?"
    return out


def broker_pid() -> int | None:
    """The process listening on the bootstrap port (ours, or a broker another clone or
    `FENGQIAO_KAFKA_BOOTSTRAP` points at), else ours by .run/kafka/broker.pid."""
    port = BOOTSTRAP.rsplit(":", 1)[-1]
    try:
        out = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    m = re.search(r"pid=(\d+)", out)
    if m:
        return int(m.group(1))
    try:
        return int((ROOT / ".run" / "kafka" / "broker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def broker_properties_path() -> Path:
    """server.properties of the running broker (from its command line), else ours."""
    pid = broker_pid()
    if pid is not None:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            for a in args:
                if a.endswith(b"server.properties"):
                    return Path(a.decode())
        except OSError:
            pass
    return ROOT / ".run" / "kafka" / "server.properties"


def broker_settings() -> dict[str, str]:
    """The settings the local broker was started with (its server.properties)."""
    path = broker_properties_path()
    props: dict[str, str] = {}
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                props[k.strip()] = v.strip()
    except OSError:
        return {"error": f"no {path} (broker never started here)"}
    return {k: props[k] for k in BROKER_KEYS if k in props}


def ensure_broker() -> None:
    """Start the local broker with scripts/kafka.sh unless it already runs, or unless a broker
    answers where `FENGQIAO_KAFKA_BOOTSTRAP` points (another one, started by someone else: a
    second broker on the default port would only take CPU from the run)."""
    host, _, port = BOOTSTRAP.rpartition(":")
    if host in ("127.0.0.1", "localhost") and port.isdigit() and not port_free(int(port)):
        return
    script = str(ROOT / "scripts" / "kafka.sh")
    if subprocess.run(["bash", script, "status"], capture_output=True, timeout=30).returncode == 0:
        return
    r = subprocess.run(["bash", script, "start"], capture_output=True, text=True, timeout=240)
    if r.returncode != 0:
        raise RuntimeError(f"kafka.sh start failed: {r.stderr.strip()[-300:]}")


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    # rank ⌈p·n/100⌉ (1-based); p·n before the division keeps e.g. 95·100/100 exact
    k = max(0, min(len(sorted_values) - 1, math.ceil(p * len(sorted_values) / 100) - 1))
    return sorted_values[k]


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) != 0
