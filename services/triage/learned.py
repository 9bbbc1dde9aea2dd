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
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

_SPACE = re.compile(r"\s\s+")
NGRAM_MAX = 3
# cues shown to people: two or more letters or Han characters, no punctuation or spaces
_WORDLIKE = re.compile(r"[\w]{2,}")
# Grammatical words and particles. An n-gram made of nothing else (把, 就, 着, 我就, 还在) says
# how a report is told, not what happened: in the training corpus danger was told as a story
# ("他把…拿着…就…") and calm as a summary, so such n-grams taught the model that a long,
# upset first-person call is dangerous. The model weighs only n-grams with a content character.
FUNCTION_CHARS = frozenset(
    "的了着过在把被就都也还又再才那这个们我你他她它俺咱是有不没很太吧呢啊嘛呀哦哈啦吗么"
    "里上下去来说和跟与给对让一到得地要会能可以"
)
_NOT_CONTENT = re.compile(r"[\W_]")
# Words of how a report is filed, not of what happened: who took it, who is named, by what
# channel. In the corpus 110 records (派出所, 一名男子) are where danger is told, so their
# n-grams taught the model the genre; a neutral institutional note then read as danger (blind
# set I: 0.56 on 派出所、一名、男子、微信). An n-gram of two or more characters inside one of these
# words is not weighed.
GENRE_WORDS = (
    "派出所",
    "民警",
    "网格员",
    "报警人",
    "来电人",
    "诉求人",
    "反映人",
    "一名男子",
    "一名女子",
    "微信",
    "请求",
    "有关部门",
    "工单",
    "群聊",
    "转发",
    "截图",
    "备注",
    # who speaks in a call's transcript or a police record: 接警员：…来电人：…, 报警人称
    "接警员",
    "话务员",
    "市民",
    "报警人称",
    "来电人称",
)


def char_ngrams(text: str, n_max: int) -> set[str]:
    """The distinct character n-grams (1..n_max) of a text, as the trainer counts them."""
    t = _SPACE.sub(" ", text.lower())
    if n_max < 1:
        return set()
    grams = set(t)
    # each length's n-grams as the shorter ones plus the next character, concatenated by map:
    # no Python-level loop per position (this runs on every report)
    shorter: list[str] = list(t)
    for n in range(2, n_max + 1):
        shorter = list(map(operator.add, shorter, t[n - 1 :]))
        grams.update(shorter)
    return grams


def is_content_gram(gram: str) -> bool:
    """True when an n-gram holds a character that is neither grammatical nor punctuation, and
    is not part of a word of the report's genre (GENRE_WORDS)."""
    if len(gram) >= 2 and any(gram in w for w in GENRE_WORDS):
        return False
    return any(c not in FUNCTION_CHARS and not _NOT_CONTENT.match(c) for c in gram)


@dataclass(frozen=True)
class DangerModel:
    """Logistic regression over binary character n-gram features."""

    version: str
    bias: float
    weights: dict[str, float]
    ngram_max: int
    threshold: float
    review_from: float
    # the n-grams that may be shown as cues: positive weight, two or more word characters
    cue_weights: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cues = {g: w for g, w in self.weights.items() if w > 0 and _WORDLIKE.fullmatch(g)}
        object.__setattr__(self, "cue_weights", cues)

    def score(self, text: str) -> tuple[float, tuple[str, ...]]:
        """Probability that this report is critical, and the strongest n-grams behind it.

        The whole report is read at once: scored window by window (max-pooled), one upset
        sentence of a long call was enough to raise it, and leave-one-set-out the whole text
        raised fewer false criticals and missed no more (docs/triage-accuracy.md §6).
        """
        weights = self.weights
        # the report's n-grams the model weighs, found by one set intersection (C, not a lookup
        # per n-gram), summed in set order as before
        found = weights.keys() & char_ngrams(text, self.ngram_max)
        z = self.bias + sum([weights[g] for g in found])
        p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
        shown = self.cue_weights
        top = sorted([(shown[g], g) for g in found if g in shown], reverse=True)
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
