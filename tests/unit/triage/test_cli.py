from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.cli import main as fengqiao
from services.triage.cli import main

REPORT = {
    "source": "12345",
    "source_ref": "GD1",
    "reported_at": "2026-11-20T08:15:00+08:00",
    "text": "市民来电反映：老板拖欠工资五千元。",
}


def test_cli_prints_one_decision_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(REPORT, ensure_ascii=False) + "\n", encoding="utf-8")
    assert main([str(path)]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    assert row["source_ref"] == "GD1"
    assert (row["dispute_type"], row["channel"], row["tier"]) == ("labour", "labour", "grid")
    assert row["deadlines"]["sign_for_due"] == "2026-11-21T08:15:00+08:00"
    for key in ("co_channels", "reasons", "rules_version", "rule_id", "factors"):
        assert key in row


def test_cli_reports_bad_lines_and_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.jsonl"
    lines = ["{not json", json.dumps({"source": "fax", "text": "x"}), json.dumps(REPORT)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main([str(path)]) == 1
    captured = capsys.readouterr()
    errors = [json.loads(x) for x in captured.err.splitlines()]
    assert [e["line"] for e in errors] == [1, 2]
    assert "source" in errors[1]["error"]
    assert len(captured.out.splitlines()) == 1


def test_fengqiao_dispatches_triage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(REPORT) + "\n", encoding="utf-8")
    assert fengqiao(["triage", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["channel"] == "labour"


def test_cli_names_bad_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    rows = [
        {"source": "grid", "source_ref": "a"},
        {"source": "grid", "source_ref": "b", "text": "x", "parties": ["张三"]},
        {"source": "grid", "source_ref": "c", "text": "x", "repeat_count": "two"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert main([str(path)]) == 1
    errors = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [e["line"] for e in errors] == [1, 2, 3]
    assert errors[0]["error"].startswith("text")
    assert errors[1]["error"].startswith("parties[0]")
    assert errors[2]["error"].startswith("repeat_count")


def test_eval_prints_first_run_beside_now_for_every_set(capsys: pytest.CaptureFixture[str]) -> None:
    from services.triage.evaluate import labelled_sets
    from services.triage.evaluate import main as eval_main

    assert eval_main([]) == 0
    out = capsys.readouterr().out
    for path in labelled_sets():
        assert path.name in out
    assert out.count("  now ") == len(labelled_sets())
    # the sets of earlier rounds have their first runs recorded (a set added since shows
    # "not recorded" until someone runs --record-first-run)
    for name in ("holdout.jsonl", "holdout2.jsonl", "holdout3.jsonl", "holdout4.jsonl"):
        line = next(x for x in out.splitlines() if x.startswith(name))
        assert "not recorded" not in line and "rules 2026.11" in line
