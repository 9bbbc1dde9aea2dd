"""`python -m services.triage.train`: fit the learned danger reader and write its weights.

The corpus is services/triage/training/*.jsonl (reports written for training by hands that
never saw an evaluation set) and the round's blind sets after their first runs
(tests/unit/triage/blind_*.jsonl) (one object a line with `text` and `severity`, or an `expected`
block). The model is a logistic regression over the binary character n-grams of the normalised
text that hold a content character (learned.is_content_gram), read over the whole report.
Its thresholds come from 5-fold out-of-fold probabilities, read together with the grammar's
own decision on the same reports: `threshold` is the lowest at which the grammar and
the model together raise no more than FALSE_CRITICAL_BUDGET of the non-critical reports to
critical; `review_from` is where a report is only queued for review. The model never lowers
what the grammar reads as critical: on short explicit reports ("他说要开车撞死对方") it knows
too little. Writes services/triage/rules/danger_model.json. Needs scikit-learn (dev extras).
`--leave-out FILE` (repeatable) trains on the rest of the corpus, thresholds out of fold on it
alone, and prints the held-out file's figures without writing a model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.triage.domain import decide, input_from_report
from services.triage.learned import NGRAM_MAX, is_content_gram
from services.triage.rules import Rules, load_rules

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
                        "file": path.name,
                        "source": obj.get("source", "grid"),
                        "text": str(obj["text"]),
                        "critical": label["severity"] == "critical",
                    }
                )
    return rows


def combined(grammar: bool, p: float, threshold: float) -> bool:
    """Critical as triage decides it: the grammar's critical read stands; the model adds."""
    return grammar or p >= threshold


def vetoed(texts: list[str], rules: Rules) -> list[bool]:
    """Reports whose danger objects are all in their ordinary use, or that say no danger was seen:
    the model may not raise them (domain.read_danger), so their probability counts as 0 when
    thresholds are chosen."""
    use = rules.compiled.ordinary_use
    denied = rules.compiled.denied_danger
    return [
        (use is not None and use.all_ordinary(t) is not None)
        or (denied is not None and denied.search(t) is not None)
        for t in texts
    ]


def _masked(p: list[float], veto: list[bool]) -> list[float]:
    return [0.0 if v else x for x, v in zip(p, veto, strict=True)]


def _lowest_within(p: list[float], base: list[bool], y: list[bool], budget: float) -> float:
    """The lowest threshold whose combined false-critical share stays within the budget
    (`p` already 0 where the ordinary-use veto keeps the model from raising)."""
    negatives = sum(1 for c in y if not c)
    for t in sorted({round(x, 4) for x in p}):
        false = sum(1 for pi, b, c in zip(p, base, y, strict=True) if not c and combined(b, pi, t))
        if false <= budget * negatives:
            return t
    return 1.0


def _fit(texts: list[str], y: list[bool]) -> tuple[Any, Any]:
    """A vectoriser over the content n-grams of these texts and a regression fitted on them."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    seen = CountVectorizer(analyzer="char", ngram_range=(1, NGRAM_MAX), min_df=2, binary=True)
    seen.fit(texts)
    vocabulary = sorted(g for g in seen.vocabulary_ if is_content_gram(g))
    vec = CountVectorizer(
        analyzer="char", ngram_range=(1, NGRAM_MAX), binary=True, vocabulary=vocabulary
    )
    clf = LogisticRegression(C=C, max_iter=5000, class_weight="balanced")
    clf.fit(vec.transform(texts), y)
    return vec, clf


def _thresholds(
    texts: list[str], y: list[bool], grammar: list[bool], veto: list[bool]
) -> tuple[float, float, list[float]]:
    """Threshold and review_from from 5-fold out-of-fold probabilities, read with the grammar."""
    from sklearn.model_selection import StratifiedKFold

    oof = [0.0] * len(texts)
    folds = StratifiedKFold(5, shuffle=True, random_state=7)
    for train_idx, test_idx in folds.split(texts, y):
        vec, clf = _fit([texts[i] for i in train_idx], [y[i] for i in train_idx])
        probs = clf.predict_proba(vec.transform([texts[i] for i in test_idx]))[:, 1]
        for i, p in zip(test_idx, probs, strict=True):
            oof[i] = float(p)
    oof = _masked(oof, veto)
    threshold = _lowest_within(oof, grammar, y, FALSE_CRITICAL_BUDGET)
    review_from = min(threshold, _lowest_within(oof, grammar, y, REVIEW_BUDGET))
    return threshold, review_from, oof


def _share(hit: list[bool], y: list[bool], want: bool) -> str:
    sel = [h for h, c in zip(hit, y, strict=True) if c == want]
    return f"{sum(sel)}/{len(sel)}"


def leave_out(
    held: str, rows: list[dict[str, Any]], texts: list[str], grammar: list[bool], veto: list[bool]
) -> str:
    """Train on every corpus file but `held`, thresholds out of fold; figures on `held`."""
    inside = [i for i, r in enumerate(rows) if r["file"] != held]
    outside = [i for i, r in enumerate(rows) if r["file"] == held]
    if not outside:
        raise SystemExit(f"--leave-out {held}: no such corpus file")
    y_in = [bool(rows[i]["critical"]) for i in inside]
    threshold, _, _ = _thresholds(
        [texts[i] for i in inside], y_in, [grammar[i] for i in inside], [veto[i] for i in inside]
    )
    vec, clf = _fit([texts[i] for i in inside], y_in)
    raw = clf.predict_proba(vec.transform([texts[i] for i in outside]))[:, 1]
    probs = _masked([float(x) for x in raw], [veto[i] for i in outside])
    y = [bool(rows[i]["critical"]) for i in outside]
    g = [grammar[i] for i in outside]
    both = [combined(gi, float(p), threshold) for gi, p in zip(g, probs, strict=True)]
    return (
        f"{held}: threshold {threshold:.3f}; grammar {_share(g, y, True)} critical, "
        f"{_share(g, y, False)} false; grammar + model {_share(both, y, True)} critical, "
        f"{_share(both, y, False)} false"
    )


def main(argv: list[str] | None = None) -> int:
    """Fit, choose thresholds from out-of-fold figures, export, print what was measured."""
    parser = argparse.ArgumentParser(prog="python -m services.triage.train")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    parser.add_argument(
        "--leave-out",
        action="append",
        default=[],
        metavar="FILE",
        help="corpus file name (e.g. blind_d.jsonl) to hold out: train on the rest, print the "
        "held-out figures, write no model",
    )
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
    veto = vetoed(texts, rules)
    if args.leave_out:
        for held in args.leave_out:
            print(leave_out(held, rows, texts, grammar, veto), flush=True)
        return 0
    y = [bool(r["critical"]) for r in rows]
    threshold, review_from, oof = _thresholds(texts, y, grammar, veto)
    both = [combined(g, p, threshold) for g, p in zip(grammar, oof, strict=True)]
    measured = {
        "grammar_recall": _share(grammar, y, True),
        "grammar_false_critical": _share(grammar, y, False),
        "combined_recall": _share(both, y, True),
        "combined_false_critical": _share(both, y, False),
    }
    vec, clf = _fit(texts, y)
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
        "features": "content",
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
