"""`triage [FILE.jsonl]`: canonical reports in (one JSON object a line), decisions out."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from services.triage.domain import decide, input_from_report
from services.triage.rules import Rules, RulesError, load_rules

OUTPUT_KEYS = (
    "dispute_type",
    "severity",
    "channel",
    "co_channels",
    "tier",
    "rule_id",
    "deadlines",
    "reasons",
    "factors",
    "rules_version",
    "review",
    "review_cues",
)


def _decided_at(report: dict[str, Any]) -> datetime:
    """Deadlines run from the report time when given, so reruns give the same output."""
    raw = report.get("reported_at")
    if isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw)
            return when if when.tzinfo else when.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def triage_lines(lines: Iterable[str], rules: Rules, out: TextIO, err: TextIO) -> int:
    """Decide each line, decisions to out and errors to err; return the number of bad lines."""
    bad = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            report = json.loads(line)
            if not isinstance(report, dict):
                raise ValueError("line is not a JSON object")
            decision = decide(input_from_report(report), rules, _decided_at(report)).to_dict()
        except (ValueError, TypeError) as exc:
            bad += 1
            reason = f"invalid JSON: {exc}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            err.write(json.dumps({"error": reason, "line": number}, ensure_ascii=False) + "\n")
            continue
        row: dict[str, Any] = {"source_ref": report.get("source_ref")}
        row.update({k: decision[k] for k in OUTPUT_KEYS})
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return bad


def main(argv: list[str] | None = None) -> int:
    """Run the triage CLI; exit 1 if any line was bad, 2 if the rules or file cannot be read.

    `triage corrections …` exports coordinators' corrections instead (corrections.py).
    """
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["corrections"]:
        from services.triage.corrections import main as corrections_main

        return corrections_main(args_in[1:])
    parser = argparse.ArgumentParser(prog="triage", description=__doc__)
    parser.add_argument("file", nargs="?", type=Path, help="JSONL reports (default: stdin)")
    parser.add_argument("--rules", type=Path, default=None, help="rules.yaml to use")
    args = parser.parse_args(args_in)
    try:
        rules = load_rules(args.rules)
    except RulesError as exc:
        sys.stderr.write(json.dumps({"error": str(exc)}, ensure_ascii=False) + "\n")
        return 2
    if args.file is None:
        bad = triage_lines(sys.stdin, rules, sys.stdout, sys.stderr)
    else:
        try:
            with args.file.open(encoding="utf-8") as fh:
                bad = triage_lines(fh, rules, sys.stdout, sys.stderr)
        except OSError as exc:
            sys.stderr.write(json.dumps({"error": f"cannot read {args.file}: {exc}"}) + "\n")
            return 2
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
