"""Triage throughput on one core: the sample reports decided over and over. Asserts nothing."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from services.triage.domain import TriageInput, decide, input_from_report  # noqa: E402
from services.triage.rules import load_rules  # noqa: E402

SAMPLES = REPO_ROOT.parent / "shared" / "samples" / "reports.jsonl"
FALLBACK = REPO_ROOT / "tests" / "unit" / "triage" / "unseen.jsonl"


def _inputs() -> list[TriageInput]:
    path = SAMPLES if SAMPLES.exists() else FALLBACK
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [input_from_report(r) for r in rows]


def run(n: int = 20_000) -> dict[str, Any]:
    """Make n decisions over the sample reports; return the timing figures."""
    rules = load_rules()
    inputs = _inputs()
    now = datetime.now(UTC)
    for inp in inputs:  # warm-up: regex and lexicon caches
        decide(inp, rules, now)
    latencies: list[float] = []
    cpu_start = time.process_time()
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        decide(inputs[i % len(inputs)], rules, now)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    latencies.sort()
    return {
        "decisions": n,
        "distinct_reports": len(inputs),
        "seconds": round(elapsed, 3),
        "decisions_per_s": round(n / elapsed, 1),
        "cpu_seconds": round(cpu, 3),
        "decisions_per_cpu_s": round(n / cpu, 1) if cpu else None,
        "p50_us": round(latencies[len(latencies) // 2] * 1e6, 1),
        "p99_us": round(latencies[int(len(latencies) * 0.99)] * 1e6, 1),
        "rules_version": rules.version,
    }


def main() -> None:
    """Print the figures as a small table."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    figures = run(n)
    print(f"{'measure':<18}{'value':>14}")
    for key, value in figures.items():
        print(f"{key:<18}{value!s:>14}")


if __name__ == "__main__":
    main()
