"""The golden triage decisions: `python -m tests.unit.triage.golden.make_golden` rewrites them.

Every report text the project holds (the shared samples, the bench generator's varied copies
of them as intake hands them on, the labelled sets beside the tests and one text in four of
the danger model's training corpus) is decided by today's rules, and each decision is kept in
decisions.jsonl. test_golden.py decides them again and compares: a change meant to make
triage cheaper must not change one decision. The reports' labels are never read. Rewrite the
file only when a rules change is meant to change decisions, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.reports import vary
from services.triage.domain import Party, TriageDecision, TriageInput, decide
from services.triage.rules import CHANNELS, SEVERITIES, Rules, load_rules
from shared.pii import is_organisation, mask_name, redact_free_text

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[3]
GOLDEN = HERE / "decisions.jsonl"
SAMPLES = REPO_ROOT.parent / "shared" / "samples" / "reports.jsonl"
LABELLED_DIR = REPO_ROOT / "tests" / "unit" / "triage"
TRAINING_DIR = REPO_ROOT / "services" / "triage" / "training"
NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
# the bench generator's copies of the samples: how many, and its seed and run tag
GENERATED = 480
GENERATOR_SEED, GENERATOR_TAG = 7, "golden"
# one in this many texts of the danger model's training corpus (the file stays small)
TRAINING_EVERY = 4
# the types a coordinator's correction picks from
TYPES = ("marriage_family", "neighbour", "labour", "debt_contract", "public_order", "other")


def _rows(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def _input(row: dict[str, Any]) -> TriageInput:
    """What triage reads of a report: source, text, category and party names (no labels)."""
    parties = tuple(
        Party(name=p.get("name"), role=p.get("role"))
        for p in row.get("parties") or []
        if isinstance(p, dict)
    )
    return TriageInput(
        source=row["source"], text=row["text"], category=row.get("category"), parties=parties
    )


def _generated(samples: list[dict[str, Any]]) -> Iterator[tuple[str, TriageInput]]:
    """bench/reports.py's varied samples as triage receives them from intake (persons' names
    masked in the text and the parties), each given a case history in turn: repeats, returned
    channels, a county hand-over after returns, a coordinator's correction."""
    rng = random.Random(f"{GENERATOR_SEED}-{GENERATOR_TAG}")
    history = random.Random(GENERATOR_SEED)
    clean = [{k: v for k, v in s.items() if k not in ("expected", "why")} for s in samples]
    for i in range(GENERATED):
        r = vary(clean[i % len(clean)], f"G-{i:05d}", rng, i)
        people = [r.get("reporter") or {}, *(r.get("parties") or [])]
        address = (r.get("location") or {}).get("address")
        text = redact_free_text(r["text"], [p.get("name") for p in people], [address])
        parties = tuple(
            Party(
                name=(p["name"] if is_organisation(p.get("name")) else mask_name(p.get("name"))),
                role=p.get("role"),
            )
            for p in r.get("parties") or []
        )
        kw: dict[str, Any] = {}
        step = i % 6
        if step == 1:
            kw["repeat_count"] = history.randint(2, 4)
        elif step in (2, 3):
            gone = history.sample(CHANNELS, history.randint(1, 3 if step == 2 else 5))
            kw["excluded_channels"] = frozenset(gone)
            kw["return_count"] = len(gone) if step == 3 else 1
        elif step == 4:
            kw["corrected_type"] = history.choice(TYPES)
        elif step == 5:
            kw["corrected_severity"] = history.choice(SEVERITIES)
            if history.random() < 0.5:
                kw["corrected_type"] = history.choice(TYPES)
        yield f"generated:{i}", TriageInput(r["source"], text, r.get("category"), parties, **kw)


def golden_inputs() -> Iterator[tuple[str, TriageInput]]:
    """(key, input) for every golden report, in file order."""
    samples = _rows(SAMPLES) if SAMPLES.exists() else []
    for i, row in enumerate(samples):
        yield f"samples:{i}", _input(row)
    yield from _generated(samples) if samples else iter(())
    for path in sorted(LABELLED_DIR.glob("*.jsonl")):
        for i, row in enumerate(_rows(path)):
            yield f"{path.name}:{i}", _input(row)
    for path in sorted(TRAINING_DIR.glob("*.jsonl")):
        for i, row in enumerate(_rows(path)):
            if i % TRAINING_EVERY == 0:
                yield f"{path.name}:{i}", _input(row)


def fingerprint(inp: TriageInput) -> str:
    """A short hash of the input: a changed source file is told apart from a changed decision."""
    fields = {**vars(inp), "excluded_channels": sorted(inp.excluded_channels)}
    return hashlib.sha1(repr(sorted(fields.items())).encode()).hexdigest()[:10]


def compact(decision: TriageDecision, rules: Rules) -> dict[str, Any]:
    """The decision without what repeats other fields or the rules file: the due times (the
    fixed clock plus the minutes and days), the severity, tier and deadline reasons when they
    only restate the factors, tier and deadlines (kept as their kind), a routing rule's own
    description at the head of the channel reason ("+" and what follows it), the rules
    version, and empty fields. Nothing else is dropped: two decisions with the same compact
    form are the same decision."""
    d = decision.to_dict()
    dl = d["deadlines"]
    minutes, days = dl["sign_for_minutes"], dl["mediation_days"]
    out: dict[str, Any] = {
        "type": d["dispute_type"],
        "severity": d["severity"],
        "channel": d["channel"],
        "tier": d["tier"],
        "rule": d["rule_id"],
        "deadlines": [minutes, days],
    }
    if d["co_channels"]:
        out["co"] = d["co_channels"]
    factors = [[f["level"], f["factor"], f["evidence"]] for f in d["factors"]]
    if factors:
        out["factors"] = factors
    restated = {
        (
            "severity",
            d["severity"],
            "；".join(f"{f}({lv})：{ev}" for lv, f, ev in factors) or "无加重因素",
        ),
        ("tier", d["tier"], f"严重程度{d['severity']} → {d['tier']}"),
        ("deadline", f"{minutes}m/{days}d", f"签收{minutes}分钟内，调解期限{days}天"),
    }
    described = {r.id: r.description for r in rules.routing}
    reasons: list[Any] = []
    for r in d["reasons"]:
        kind, code, evidence = r["kind"], r["code"], r["evidence"]
        if (kind, code, evidence) in restated:
            reasons.append(kind)
        elif kind == "channel" and evidence.startswith(described.get(code) or "\0"):
            reasons.append([kind, code, "+" + evidence[len(described[code]) :]])
        else:
            reasons.append([kind, code, evidence])
    out["reasons"] = reasons
    for key in ("amount_yuan", "people_count"):
        if d[key] is not None:
            out[key] = d[key]
    if d["review_cues"]:
        out["cues"] = d["review_cues"]
    if d["review"] != bool(d["review_cues"]):
        out["review"] = d["review"]
    clock = {
        "sign_for_due": (NOW + timedelta(minutes=minutes)).isoformat(),
        "mediation_due": (NOW + timedelta(days=days)).isoformat(),
    }
    for key, value in clock.items():
        if dl[key] != value:
            out[key] = dl[key]
    if d["decided_at"] != NOW.isoformat():
        out["decided_at"] = d["decided_at"]
    return out


def record(key: str, inp: TriageInput, decision: TriageDecision, rules: Rules) -> dict[str, Any]:
    """The stored form of one decision, keyed by where its report comes from."""
    return {"key": key, "input": fingerprint(inp), **compact(decision, rules)}


def build(rules: Rules) -> list[dict[str, Any]]:
    """Decide every golden report with these rules."""
    return [record(key, inp, decide(inp, rules, NOW), rules) for key, inp in golden_inputs()]


def main() -> None:
    """Rewrite decisions.jsonl from today's rules."""
    rows = build(load_rules())
    with GOLDEN.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"{len(rows)} decisions → {GOLDEN.relative_to(REPO_ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
