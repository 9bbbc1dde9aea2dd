"""`make run`: start the broker and the four services on SQLite, seed a demo county, print URLs.

Ctrl-C (or SIGTERM) stops the services, then the broker this script started.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
SERVICES = {"intake": 8001, "triage": 8002, "mediation": 8003, "followup": 8004}
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


def wait_ready(port: int, timeout: float = 60) -> bool:
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


def main() -> int:
    """Start everything and wait for Ctrl-C."""
    RUN.mkdir(exist_ok=True)
    broker_was_running = kafka("status") == 0
    if kafka("start") != 0:
        print("the Kafka broker did not start; see .run/kafka/broker.log", file=sys.stderr)
        return 1
    creds = asyncio.run(seed())
    cred_file = RUN / "demo-credentials.json"
    cred_file.write_text(json.dumps(creds, ensure_ascii=False, indent=2), encoding="utf-8")
    os.chmod(cred_file, 0o600)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = RUN / "logs"
    logs.mkdir(exist_ok=True)
    for name, port in SERVICES.items():
        out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", f"services.{name}.main:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

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
    try:
        for name, port in SERVICES.items():
            ok = wait_ready(port)
            print(f"  {name:<10} http://127.0.0.1:{port}  {'ready' if ok else 'NOT READY'}"
                  f"  (docs: /docs, log: .run/logs/{name}.log)")
        print(f"\nDemo credentials: {cred_file}")
        print("Dashboards poll the ledger: http://127.0.0.1:8004/v1/cases and /v1/stats")
        print("Post a report:  curl -X POST http://127.0.0.1:8001/v1/reports "
              "-H 'X-API-Key: <key of the source>' -H 'Content-Type: application/json' -d @report.json")
        print("Ctrl-C stops everything.")
        while True:
            for name, p in procs.items():
                if p.poll() is not None:
                    print(f"{name} exited with {p.returncode}; see .run/logs/{name}.log")
                    raise KeyboardInterrupt
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping…")
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
