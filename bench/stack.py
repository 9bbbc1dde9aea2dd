"""The four services as separate processes (like scripts/run.py), isolated for a bench run.

A fresh topic/group prefix and SQLite files in a temporary directory: the bench never touches
the demo data or topics. `python -m bench.stack seed` (run with the stack's environment) seeds
integrators and the demo county and prints the credentials as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import profile
from bench.common import ROOT, broker_pid, port_free
from shared.topics import SOURCES

SERVICES = {"intake": 8001, "triage": 8002, "mediation": 8003, "followup": 8004}


@dataclass
class Proc:
    """One running service process."""

    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path


def pick_ports(preferred: dict[str, int], extra: int = 0) -> dict[str, int]:
    """The usual ports when free, else the same layout shifted by 10000 (e.g. `make run` is up).

    `extra` instances of every service listen 10, 20, … above the first one's port.
    """
    for shift in (0, 10000, 20000, 30000, 40000):  # several runs on one machine
        ports = {n: p + shift for n, p in preferred.items()}
        wanted = [p + 10 * k for p in ports.values() for k in range(extra + 1)]
        if all(port_free(p) for p in wanted):
            return ports
    raise RuntimeError("no free ports for the services (tried 8001-8004, 18001- … 48001-)")


@dataclass
class Stack:
    """A bench deployment: environment, ports, processes; always stopped in a finally.

    `instances` > 1 starts that many processes of every service in the same consumer groups on
    the same databases: meant for PostgreSQL (`extra_env` with the `*_DATABASE_URL`s).
    """

    prefix: str
    workdir: Path
    instances: int = 1
    profile_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    samplers: list[subprocess.Popen[bytes]] = field(default_factory=list)  # py-spy, --profile
    ports: dict[str, int] = field(default_factory=dict)
    creds: dict[str, Any] = field(default_factory=dict)
    only: tuple[str, ...] = tuple(SERVICES)
    _postgres: int | None = field(default=None, init=False, repr=False)  # its postmaster's pid

    def env(self) -> dict[str, str]:
        """Environment of a service process (and of the seeding subprocess)."""
        db = self.workdir
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FENGQIAO_TOPIC_PREFIX": self.prefix,
            "FENGQIAO_GROUP_PREFIX": self.prefix,
            "FENGQIAO_LOG_LEVEL": os.environ.get("FENGQIAO_LOG_LEVEL", "INFO"),  # as deployed
            # a throwaway deployment on the packaged dev keys (make bench, make chaos)
            "FENGQIAO_DEV_MODE": "true",
            "INTAKE_DATABASE_URL": f"sqlite+aiosqlite:///{db / 'intake.db'}",
            "TRIAGE_DATABASE_URL": f"sqlite+aiosqlite:///{db / 'triage.db'}",
            "MEDIATION_DATABASE_URL": f"sqlite+aiosqlite:///{db / 'mediation.db'}",
            "FOLLOWUP_DATABASE_URL": f"sqlite+aiosqlite:///{db / 'followup.db'}",
            # the bench is one integrator per source sending thousands a second
            "INTAKE_RATE_LIMIT_PER_S": "1000000",
            "INTAKE_RATE_LIMIT_BURST": "1000000",
        }
        env.update(self.extra_env)
        return env

    def seed(self, timeout_s: float = 120) -> dict[str, Any]:
        """Seed integrators and the demo county in a subprocess with the stack's environment."""
        r = subprocess.run(
            [sys.executable, "-m", "bench.stack", "seed"],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if r.returncode != 0:
            raise RuntimeError(f"seeding failed: {r.stderr.strip()[-800:]}")
        creds: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
        return creds

    def _spawn(self, name: str, port: int, env: dict[str, str], label: str) -> Proc:
        log = self.workdir / f"{label}.log"
        cmd = [sys.executable]
        cmd += [
            "-m",
            "uvicorn",
            f"services.{name}.main:create_app",
            "--factory",
            # BENCH_PLAIN_ASYNCIO=1: the stdlib loop and h11, to measure what uvloop brings
            *(
                ["--loop", "asyncio", "--http", "h11"]
                if os.environ.get("BENCH_PLAIN_ASYNCIO")
                else []
            ),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        out = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        p = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        return Proc(label, port, p, log)

    def start(self, timeout_s: float = 120) -> None:
        """Start every service (`instances` of each) and wait until all are ready."""
        self.ports = pick_ports(
            {n: p for n, p in SERVICES.items() if n in self.only}, self.instances - 1
        )
        for name, port in self.ports.items():
            for k in range(self.instances):
                label = name if k == 0 else f"{name}{k + 1}"
                self.procs.append(self._spawn(name, port + 10 * k, self.env(), label))
        deadline = time.monotonic() + timeout_s
        for p in self.procs:
            if not wait_ready(p, deadline):
                tail = p.log.read_text(errors="replace")[-1500:] if p.log.exists() else ""
                raise RuntimeError(f"{p.name} not ready on port {p.port}: {tail}")
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            self.samplers = [
                profile.attach(p.popen.pid, self.profile_dir / f"{p.name}.raw.txt")
                for p in self.procs
            ]

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM every process, then kill (the profilers first get SIGINT, and write)."""
        for sampler in self.samplers:
            sampler.send_signal(signal.SIGINT)
        for sampler in self.samplers:
            try:
                sampler.wait(timeout=60)
            except subprocess.TimeoutExpired:
                sampler.kill()
        self.samplers.clear()
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for p in self.procs:
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(timeout=10)
        self.procs.clear()
        if self.profile_dir is not None:
            profile.render(self.profile_dir)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system, all threads) used so far by each service, the broker and,
        when the services run on it, the project's PostgreSQL server."""
        out = {p.name: cpu_of(p.popen.pid) for p in self.procs}
        broker = broker_pid()
        if broker is not None:
            out["kafka broker"] = cpu_of(broker)
            out[BROKER_JIT] = jit_cpu_of(broker)
        if self._postgres is None and any(
            v.startswith("postgresql") for v in self.extra_env.values()
        ):
            self._postgres = postgres_pid()  # looked up once: pg.sh is a subprocess
        if self._postgres is not None:
            out[POSTGRES] = server_cpu_of(self._postgres)
        return out

    def cpu_by_service(self) -> dict[str, float]:
        """CPU seconds so far summed over the instances of each service (and the broker)."""
        out: dict[str, float] = {}
        for label, cpu in self.cpu_seconds().items():
            name = label.rstrip("0123456789")
            out[name] = out.get(name, 0.0) + cpu
        return out

    def url(self, name: str) -> str:
        """Base URL of a service (its first instance)."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def urls(self, name: str) -> list[str]:
        """Base URLs of every instance of a service (instance k listens 10·k above the first)."""
        return [f"http://127.0.0.1:{self.ports[name] + 10 * k}" for k in range(self.instances)]

    def dead(self) -> list[str]:
        """Processes that exited on their own."""
        return [
            f"{p.name} (exit {p.popen.returncode})"
            for p in self.procs
            if p.popen.poll() is not None
        ]


# the broker's JIT compiler threads: a broker started for the run compiles its hot paths during
# the first minutes, CPU a broker that has run for a while no longer spends
BROKER_JIT = "kafka broker jit"


def jit_cpu_of(pid: int) -> float:
    """utime + stime of a JVM's JIT compiler threads (C1/C2 CompilerThread) from /proc."""
    total = 0.0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            if not (task / "comm").read_text().startswith(("C1 Compiler", "C2 Compiler")):
                continue
            total += _cpu(_stat(task / "stat"))
        except (OSError, IndexError, ValueError):
            continue
    return total


POSTGRES = "postgresql"


def postgres_pid() -> int | None:
    """The postmaster of the project's PostgreSQL server (scripts/pg.sh), if it runs."""
    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "pg.sh"), "dir"], capture_output=True, text=True, timeout=30
    )
    try:
        return int((Path(r.stdout.strip()) / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def server_cpu_of(pid: int) -> float:
    """CPU seconds of a server and every process it started, exited or not: its own, its reaped
    children's (the kernel adds them to its cutime + cstime) and each live child's. PostgreSQL
    runs a process per connection, and a backend that exits mid-run keeps counting."""
    try:
        total = _cpu(_stat(Path(f"/proc/{pid}/stat")), reaped=True)
    except OSError:
        return 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            child = _stat(entry / "stat")
        except OSError:
            continue  # gone meanwhile
        if child[1] == str(pid):  # its parent
            total += _cpu(child)
    return total


def _stat(path: Path) -> list[str]:
    """The fields of a /proc stat file after the command name (which may hold spaces)."""
    return path.read_text().rsplit(")", 1)[1].split()


def _cpu(fields: list[str], reaped: bool = False) -> float:
    """utime + stime (and, `reaped`, cutime + cstime: children waited for) in seconds."""
    return sum(int(f) for f in fields[11 : 15 if reaped else 13]) / os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """utime + stime of a process from /proc (0.0 when it is gone)."""
    try:
        return _cpu(_stat(Path(f"/proc/{pid}/stat")))
    except (OSError, IndexError, ValueError):
        return 0.0


def wait_ready(p: Proc, deadline: float) -> bool:
    """Poll /readyz until 200, the process dies or the deadline passes."""
    while time.monotonic() < deadline:
        if p.popen.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{p.port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.3)
    return False


def api_keys(creds: dict[str, Any]) -> dict[str, str]:
    """source → API key, whatever shape intake's seed_demo returns."""
    keys: dict[str, str] = {}

    def walk(x: Any, hint: str | None = None) -> None:
        if isinstance(x, dict):
            src = x.get("source") or hint
            if isinstance(x.get("api_key"), str) and src:
                keys.setdefault(str(src), x["api_key"])
            for k, v in x.items():
                walk(v, k if k in SOURCES else src)
        elif isinstance(x, list):
            for v in x:
                walk(v, hint)
        elif isinstance(x, str) and hint in SOURCES and x.startswith("fq_"):
            keys.setdefault(hint, x)
        elif hasattr(x, "__dict__"):
            walk(vars(x), hint)

    walk(creds.get("integrators"))
    return keys


async def _seed() -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    from services.intake.seed import seed_demo as seed_intake
    from services.intake.settings import IntakeSettings
    from services.mediation.seed import seed_demo as seed_mediation
    from services.mediation.settings import MediationSettings

    def plain(x: Any) -> Any:
        if is_dataclass(x) and not isinstance(x, type):
            return asdict(x)
        if hasattr(x, "model_dump"):
            return x.model_dump(mode="json")
        if isinstance(x, dict):
            return {str(k): plain(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [plain(v) for v in x]
        return x

    integrators = await seed_intake(IntakeSettings())
    staff = await seed_mediation(MediationSettings())
    return {"integrators": plain(integrators), "staff": plain(staff)}


if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    print(json.dumps(asyncio.run(_seed()), ensure_ascii=False, default=str))
