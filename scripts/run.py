"""`make run`: start the broker and the four services on SQLite, seed a demo county, start the web
console (services/console, a client of the four services' APIs), print URLs.

Ctrl-C (or SIGTERM) stops the services, then the broker this script started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
SERVICES = ("intake", "triage", "mediation", "followup")
sys.path.insert(0, str(ROOT))


def kafka(cmd: str) -> int:
    """Run scripts/kafka.sh CMD."""
    return subprocess.run(["bash", str(ROOT / "scripts" / "kafka.sh"), cmd]).returncode


async def seed() -> dict[str, object]:
    """Seed integrators (intake) and the demo county (mediation); return the credentials."""
    from services.intake.seed import seed_demo as seed_intake
    from services.intake.settings import IntakeSettings
    from services.mediation.seed import seed_demo as seed_mediation
    from services.mediation.settings import MediationSettings

    integrators = await seed_intake(IntakeSettings())
    staff = await seed_mediation(MediationSettings())
    return {"integrators": integrators, "staff": staff}


def wait_ready(port: int, timeout: float = 180) -> bool:
    """Poll /readyz until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.5)
    return False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options for tests and benchmarks; `make run` uses the defaults."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port-base", type=int, default=8001, help="intake's port; others follow")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="SQLite files and logs here instead of .run/ (default: .run/)",
    )
    p.add_argument("--topic-prefix", default="", help="isolate topics and consumer groups")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start everything and wait for Ctrl-C."""
    args = parse_args(argv)
    RUN.mkdir(exist_ok=True)
    data = args.data_dir or RUN
    data.mkdir(parents=True, exist_ok=True)
    ports = {name: args.port_base + i for i, name in enumerate(SERVICES)}
    console_port = args.port_base + len(SERVICES)
    os.environ.update(
        {
            "FENGQIAO_TOPIC_PREFIX": args.topic_prefix,
            "FENGQIAO_GROUP_PREFIX": args.topic_prefix,
            # the demo runs in dev mode (published dev keys, http callbacks); a deployment never
            # does: dev mode is off by default and the services refuse default secrets
            "FENGQIAO_DEV_MODE": "true",
        }
    )
    for name, port in ports.items():
        os.environ[f"{name.upper()}_HTTP_PORT"] = str(port)
        if args.data_dir is not None:
            os.environ[f"{name.upper()}_DATABASE_URL"] = (
                f"sqlite+aiosqlite:///{data.resolve() / (name + '.db')}"
            )
    broker_was_running = kafka("status") == 0
    if kafka("start") != 0:
        print("the Kafka broker did not start; see .run/kafka/broker.log", file=sys.stderr)
        return 1
    creds = asyncio.run(seed())
    cred_file = data / "demo-credentials.json"
    cred_file.write_text(json.dumps(creds, ensure_ascii=False, indent=2), encoding="utf-8")
    os.chmod(cred_file, 0o600)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # the console reaches the services over their HTTP APIs only; in dev mode it offers the
    # demo staff (from the credentials file) at sign-in
    env.update({f"CONSOLE_{n.upper()}_URL": f"http://127.0.0.1:{p}" for n, p in ports.items()})
    env.update({"CONSOLE_HTTP_PORT": str(console_port), "CONSOLE_DEMO_CREDENTIALS": str(cred_file)})
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    for name, port in [*ports.items(), ("console", console_port)]:
        out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        procs[name] = subprocess.Popen(
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
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def stop(*_: object) -> None:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        if not broker_was_running:
            kafka("stop")

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Ctrl-C (SIGINT) stops everything even when the caller ignored it: a shell without job
    # control starts `cmd &` with SIGINT ignored, and Python then leaves it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for name, port in [*ports.items(), ("console", console_port)]:
            ok = wait_ready(port)
            print(
                f"  {name:<10} http://127.0.0.1:{port}  {'ready' if ok else 'NOT READY'}"
                f"  (docs: /docs, log: {logs / (name + '.log')})",
                flush=True,
            )
        print(f"\nConsole (控制台): http://127.0.0.1:{console_port}/  (sign in as demo staff)")
        print(f"Demo credentials: {cred_file}")
        print(
            f"Dashboards poll the ledger: http://127.0.0.1:{ports['followup']}/v1/cases "
            "and /v1/stats"
        )
        print(
            f"Post a report:  curl -X POST http://127.0.0.1:{ports['intake']}/v1/reports "
            "-H 'X-API-Key: <key>' -H 'Content-Type: application/json' -d @report.json"
        )
        print("Ctrl-C stops everything.", flush=True)
        while True:
            for name, p in procs.items():
                if p.poll() is not None:
                    print(f"{name} exited with {p.returncode}; see {logs / (name + '.log')}")
                    raise KeyboardInterrupt
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping…")
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
