"""`python -m services.triage.evaluate [FILE]`: accuracy of triage against labelled reports.

Without FILE (`make eval`): every labelled set (tests/unit/triage/*.jsonl and
../shared/samples/reports.jsonl), each with its first-run figures (first_runs.json) beside the
current ones. With FILE: that set's figures, confusion tables and misses.
`--record-first-run` stores the current figures of sets that have none yet: run it when a new
blind set arrives, before any rule changes because of it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.triage.domain import decide, input_from_report
from services.triage.rules import Rules, load_rules

LABELS = ("dispute_type", "severity", "channel", "tier")
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SAMPLES = REPO_ROOT.parent / "shared" / "samples" / "reports.jsonl"
LABELLED_DIR = REPO_ROOT / "tests" / "unit" / "triage"
FIRST_RUNS = LABELLED_DIR / "first_runs.json"


@dataclass
class Miss:
    """A report where at least one label differs from the expected one."""

    source_ref: str
    text: str
    wrong: dict[str, tuple[str, str]]
    why: str
    reasons: str


@dataclass
class Report:
    """Evaluation figures over one labelled file."""

    total: int = 0
    correct: Counter[str] = field(default_factory=Counter)
    confusion: dict[str, Counter[tuple[str, str]]] = field(
        default_factory=lambda: {k: Counter() for k in LABELS}
    )
    critical_expected: int = 0
    critical_found: int = 0
    false_critical: int = 0
    misses: list[Miss] = field(default_factory=list)

    def accuracy(self, label: str) -> float:
        """Share of reports whose label matched."""
        return self.correct[label] / self.total if self.total else 0.0

    @property
    def critical_recall(self) -> float:
        """Share of expected-critical reports that were found critical."""
        return self.critical_found / self.critical_expected if self.critical_expected else 1.0


def evaluate(rows: list[dict[str, Any]], rules: Rules) -> Report:
    """Decide every labelled row and compare with its `expected` labels."""
    rep = Report()
    now = datetime.now(UTC)
    for row in rows:
        expected = row["expected"]
        got = decide(input_from_report(row), rules, now).to_dict()
        rep.total += 1
        wrong: dict[str, tuple[str, str]] = {}
        for label in LABELS:
            rep.confusion[label][(expected[label], got[label])] += 1
            if got[label] == expected[label]:
                rep.correct[label] += 1
            else:
                wrong[label] = (expected[label], got[label])
        if expected["severity"] == "critical":
            rep.critical_expected += 1
            rep.critical_found += got["severity"] == "critical"
        else:
            rep.false_critical += got["severity"] == "critical"
        if wrong:
            reasons = " | ".join(f"{r['code']}: {r['evidence']}" for r in got["reasons"][:3])
            rep.misses.append(
                Miss(str(row.get("source_ref")), row["text"], wrong, row.get("why", ""), reasons)
            )
    return rep


ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3, "grid": 0, "town": 1, "county": 2}


def _confusion_table(label: str, counts: Counter[tuple[str, str]]) -> list[str]:
    seen = {e for e, _ in counts} | {g for _, g in counts}
    codes = sorted(seen, key=lambda c: (ORDER.get(c, 9), c))
    width = max(len(c) for c in codes) + 1
    lines = [f"  {label}: rows = expected, columns = decided"]
    lines.append("  " + " " * width + "".join(f"{c[:8]:>9}" for c in codes))
    for e in codes:
        cells = "".join(f"{counts.get((e, g), 0) or '.':>9}" for g in codes)
        lines.append(f"  {e:<{width}}{cells}")
    return lines


def render(rep: Report, source: Path) -> str:
    """The report as text."""
    out = [f"triage evaluation on {source} ({rep.total} reports)"]
    for label in LABELS:
        out.append(f"  {label:<13} {rep.accuracy(label):6.1%}  ({rep.correct[label]}/{rep.total})")
    out.append(
        f"  critical recall {rep.critical_recall:6.1%}  "
        f"({rep.critical_found}/{rep.critical_expected})"
    )
    out.append(f"  false critical  {rep.false_critical} of {rep.total - rep.critical_expected}")
    out.append("")
    for label in LABELS:
        out.extend(_confusion_table(label, rep.confusion[label]))
        out.append("")
    out.append(f"misses ({len(rep.misses)}):")
    for m in rep.misses:
        wrong = ", ".join(f"{k}: expected {e}, got {g}" for k, (e, g) in m.wrong.items())
        out.append(f"- {m.source_ref}: {wrong}\n    text: {m.text}\n    why:  {m.why}")
        out.append(f"    ours: {m.reasons}")
    return "\n".join(out)


def figures(rep: Report, rules_version: str) -> dict[str, Any]:
    """The figures of one run, as first_runs.json records them."""
    return {
        "reports": rep.total,
        "critical_found": rep.critical_found,
        "critical_expected": rep.critical_expected,
        "false_critical": rep.false_critical,
        "non_critical": rep.total - rep.critical_expected,
        **{label: round(rep.accuracy(label), 4) for label in LABELS},
        "rules_version": rules_version,
    }


def labelled_sets() -> list[Path]:
    """Every labelled set: the unit-test sets, then the shared samples."""
    sets = sorted(LABELLED_DIR.glob("*.jsonl"))
    return [*sets, DEFAULT_SAMPLES] if DEFAULT_SAMPLES.exists() else sets


def _cells(f: dict[str, Any]) -> str:
    crit = f"{f['critical_found']}/{f['critical_expected']}"
    nonc = f.get("non_critical") or 0
    false = f"{f['false_critical']}" + (f" ({f['false_critical'] / nonc:.1%})" if nonc else "")
    acc = " ".join(f"{f[label]:>7.1%}" for label in LABELS)
    return f"{crit:>7} {false:>10} {acc}"


def render_all(rows: list[tuple[str, dict[str, Any] | None, dict[str, Any]]]) -> str:
    """One line per set and run: first run (recorded) and now."""
    head = f"{'set':<16}{'run':<10}{'crit':>7} {'false crit':>10} " + " ".join(
        f"{h:>7}" for h in ("type", "severity", "channel", "tier")
    )
    out = ["triage evaluation: first run (the honest figure) and now", head, "-" * len(head)]
    for name, first, now in rows:
        if first is None:
            out.append(f"{name:<16}{'first':<10}{'not recorded (--record-first-run)':>40}")
        else:
            tag = "first" + ("" if first.get("blind", True) else "*")
            out.append(f"{name:<16}{tag:<10}{_cells(first)}  rules {first['rules_version']}")
        out.append(f"{'':<16}{'now':<10}{_cells(now)}  rules {now['rules_version']}")
    out.append("* written beside the rules, not blind")
    out.append("python -m services.triage.evaluate FILE: confusion tables and misses of one set")
    return "\n".join(out)


def evaluate_all(rules: Rules, record: bool = False) -> str:
    """Every labelled set with its first run; record first runs that are missing if asked."""
    recorded: dict[str, Any] = (
        json.loads(FIRST_RUNS.read_text(encoding="utf-8")) if FIRST_RUNS.exists() else {}
    )
    rows: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = []
    for path in labelled_sets():
        data = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]
        now = figures(evaluate(data, rules), rules.version)
        first = recorded.get(path.name)
        if first is None and record:
            first = recorded[path.name] = now | {"blind": True}
        rows.append((path.name, first, now))
    if record:
        FIRST_RUNS.write_text(json.dumps(recorded, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return render_all(rows)


def main(argv: list[str] | None = None) -> int:
    """Print accuracy, critical recall, confusion tables and misses; always exit 0."""
    parser = argparse.ArgumentParser(prog="python -m services.triage.evaluate")
    parser.add_argument("file", nargs="?", type=Path, default=None)
    parser.add_argument("--rules", type=Path, default=None)
    parser.add_argument("--record-first-run", action="store_true")
    args = parser.parse_args(argv)
    try:
        rules = load_rules(args.rules)
        if args.file is None:
            print(evaluate_all(rules, record=args.record_first_run))
            return 0
        rows = [json.loads(x) for x in args.file.read_text(encoding="utf-8").splitlines() if x]
        print(render(evaluate(rows, rules), args.file))
    except (OSError, ValueError) as exc:
        print(f"cannot evaluate {args.file}: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
