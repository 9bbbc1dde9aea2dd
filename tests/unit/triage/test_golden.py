"""Every golden report decided again gives the stored decision (golden/make_golden.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.triage.domain import decide
from services.triage.rules import Rules
from tests.unit.triage.golden.make_golden import (
    GOLDEN,
    NOW,
    fingerprint,
    golden_inputs,
    record,
)


def _stored() -> dict[str, dict[str, Any]]:
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    return {row["key"]: row for row in (json.loads(x) for x in lines if x.strip())}


def test_every_golden_decision_is_unchanged(rules: Rules) -> None:
    stored = _stored()
    inputs = dict(golden_inputs())
    missing = [k for k in stored if k not in inputs]
    if len(missing) == len(stored):
        pytest.skip("none of the golden reports' source files is here")
    # only the shared samples (and the bench's copies of them) live outside the repository
    assert all(k.startswith(("samples:", "generated:")) for k in missing), missing[:5]
    changed_inputs = [
        k for k, row in stored.items() if k in inputs and fingerprint(inputs[k]) != row["input"]
    ]
    assert not changed_inputs, (
        f"{len(changed_inputs)} golden reports changed in their source files (e.g. "
        f"{changed_inputs[:3]}): rewrite the golden file with make_golden.py"
    )
    diffs = []
    for key, row in stored.items():
        if key not in inputs:
            continue
        now = record(key, inputs[key], decide(inputs[key], rules, NOW), rules)
        if now != row:
            diffs.append(f"{key}\n  stored: {row}\n  now:    {now}")
    assert not diffs, f"{len(diffs)} of {len(stored)} decisions changed:\n" + "\n".join(diffs[:5])


def test_golden_covers_a_few_thousand_reports() -> None:
    stored = _stored()
    assert len(stored) >= 3000
    sources = {k.split(":")[0] for k in stored}
    assert {"samples", "generated"} <= sources
