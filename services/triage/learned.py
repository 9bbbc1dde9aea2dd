"""A learned second reader of danger: linear weights over the character n-grams of a report.

The danger grammar (signals.py) gives reasons a person can check, but misses danger phrased in
words nobody wrote into it. This model was trained on a labelled corpus kept apart from every
evaluation set (services/triage/training/, `python -m services.triage.train`); it reads the
normalised text for the shape of danger and answers a probability with the n-grams that weighed
most. Triage uses it to raise a report the grammar left below critical, and always marks such a
decision for review, so a coordinator confirms within 15 minutes what only the model saw. It
never lowers what the grammar reads as critical.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

_SPACE = re.compile(r"\s\s+")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])")
# a window is about the length of a training report (median 57, 90th percentile 81 characters)
WINDOW_CHARS = 80
NGRAM_MAX = 3
# cues shown to people: two or more letters or Han characters, no punctuation or spaces
_WORDLIKE = re.compile(r"[\w]{2,}")


def char_ngrams(text: str, n_max: int) -> set[str]:
    """The distinct character n-grams (1..n_max) of a text, as the trainer counts them."""
    t = _SPACE.sub(" ", text.lower())
    return {t[i : i + n] for n in range(1, n_max + 1) for i in range(len(t) - n + 1)}


def windows(text: str, size: int = WINDOW_CHARS) -> list[str]:
    """Runs of whole sentences of about `size` characters, and each two neighbouring runs.

    Danger is said in a sentence or two. A long, rambling call scored whole piles up the weak
    cues of its manner of speech; scored window by window, a threat buried in its middle is
    read as sharply as in a short note.
    """
    runs: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        if not sentence.strip():
            continue
        if current and len(current) + len(sentence) > size:
            runs.append(current)
            current = sentence
        else:
            current += sentence
    if current:
        runs.append(current)
    if len(runs) <= 1:
        return [text]
    return runs + [a + b for a, b in zip(runs, runs[1:], strict=False)]


@dataclass(frozen=True)
class DangerModel:
    """Logistic regression over binary character n-gram features."""

    version: str
    bias: float
    weights: dict[str, float]
    ngram_max: int
    threshold: float
    review_from: float

    def score(self, text: str) -> tuple[float, tuple[str, ...]]:
        """Probability that the report is critical (its most dangerous window), with the cues."""
        return max((self.score_window(w) for w in windows(text)), key=lambda r: r[0])

    def score_window(self, text: str) -> tuple[float, tuple[str, ...]]:
        """Probability that this text is critical, and the strongest n-grams behind it."""
        contrib = [(w, g) for g in char_ngrams(text, self.ngram_max) if (w := self.weights.get(g))]
        z = self.bias + sum(w for w, _ in contrib)
        p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
        top = sorted((c for c in contrib if c[0] > 0 and _WORDLIKE.fullmatch(c[1])), reverse=True)
        cues: list[str] = []
        for _, gram in top:
            if not any(gram in c or c in gram for c in cues):
                cues.append(gram)
            if len(cues) == 4:
                break
        return p, tuple(cues)


def load_danger_model(path: Path) -> DangerModel:
    """Read the exported weights; ValueError if the file is not a model."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    try:
        return DangerModel(
            version=str(raw["version"]),
            bias=float(raw["bias"]),
            weights={str(k): float(v) for k, v in raw["weights"].items()},
            ngram_max=int(raw["ngram_max"]),
            threshold=float(raw["threshold"]),
            review_from=float(raw["review_from"]),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path.name}: not a danger model ({exc})") from exc
