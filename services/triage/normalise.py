"""Normalisation in front of matching: one written form for the many ways a report is typed.

Order: full-width letters and digits → half-width; traditional → simplified characters;
pinyin initials of field notes ("sq" → 社区); whole words of dialect and voice-to-text
homophones (one pass, longest first); then context rewrites (regular expressions) for the
words whose meaning depends on what follows ("打紧" → "正在打", "搁屋里" → "在屋里").
Vocabulary is data: the `normalise:` section of rules.yaml. Word segmentation (jieba) is
built lazily, once per set of lexicon words, so that a term only counts where the text has
a word boundary at one of its ends ("工人" does not match inside "施工人员").
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, model_validator

from services.triage.prefilter import first_chars

# U+FF01..U+FF5E are the full-width forms of ASCII 0x21..0x7E; only letters and digits are
# folded: Chinese punctuation (，。！？) stays, because clause boundaries are read from it.
_FULL_WIDTH = {
    **{0xFF10 + i: 0x30 + i for i in range(10)},
    **{0xFF21 + i: 0x41 + i for i in range(26)},
    **{0xFF41 + i: 0x61 + i for i in range(26)},
    0xFF05: 0x25,  # ％
    0xFF0E: 0x2E,  # ．inside numbers
}


class NormaliseSpec(BaseModel):
    """The `normalise:` section of the rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # word → standard word, replaced wherever it occurs (dialect words, homophones)
    dialect: dict[str, str] = {}
    homophones: dict[str, str] = {}
    # pinyin initials used in field notes, matched case-insensitively between non-letters
    initials: dict[str, str] = {}
    # regular expression → replacement, applied in order after the word tables
    rewrites: dict[str, str] = {}

    @model_validator(mode="after")
    def _valid(self) -> NormaliseSpec:
        for pattern in self.rewrites:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"rewrites: {pattern!r} is not a valid regex: {exc}") from exc
        for word in self.initials:
            if not word.isascii() or not word.isalpha():
                raise ValueError(f"initials: {word!r} must be ASCII letters")
        return self


@dataclass(frozen=True)
class Normaliser:
    """Compiled normalisation: call it on a text to get the form the rules are written in."""

    simplify: dict[int, int]
    words: dict[str, str]
    words_re: re.Pattern[str] | None
    initials: dict[str, str]
    initials_re: re.Pattern[str] | None
    rewrites: tuple[tuple[re.Pattern[str], str], ...]
    # the characters each rewrite's match can start with (prefilter.first_chars; None: any)
    rewrite_starts: tuple[frozenset[str] | None, ...] = ()

    @classmethod
    def build(cls, spec: NormaliseSpec | None, simplify: dict[int, int]) -> Normaliser:
        """Compile the spec (None: only full-width and traditional folding)."""
        spec = spec or NormaliseSpec()
        words = {**spec.dialect, **spec.homophones}
        words_re = _alternation(words) if words else None
        initials = {k.lower(): v for k, v in spec.initials.items()}
        initials_re = (
            re.compile(
                r"(?<![A-Za-z0-9_-])(?:"
                + "|".join(re.escape(k) for k in sorted(initials, key=len, reverse=True))
                + r")(?![A-Za-z0-9_-])",
                # ASCII case only: Unicode case folding also matches ſ (long s) and K (Kelvin),
                # which lower() does not turn into a key of the table
                re.IGNORECASE | re.ASCII,
            )
            if initials
            else None
        )
        rewrites = tuple((re.compile(p), r) for p, r in spec.rewrites.items())
        table = dict(_FULL_WIDTH)
        table.update(simplify)
        starts = tuple(first_chars(p) for p in spec.rewrites)
        return cls(table, words, words_re, initials, initials_re, rewrites, starts)

    def __call__(self, text: str) -> str:
        """The normalised text (its length may differ from the input's)."""
        text = _join_spaced_words(text.translate(self.simplify))
        if self.initials_re is not None and _LATIN_LETTER.search(text) is not None:
            initials = self.initials
            text = self.initials_re.sub(lambda m: initials[m.group(0).lower()], text)
        if self.words_re is not None:
            words = self.words
            text = self.words_re.sub(lambda m: words[m.group(0)], text)
        # a rewrite runs only when the text holds a character its match can start with: most
        # reports need none of them, and a set test is cheaper than a scan of the text
        chars = set(text)
        for (regex, repl), starts in zip(self.rewrites, self.rewrite_starts, strict=True):
            if starts is not None and starts.isdisjoint(chars):
                continue
            rewritten = regex.sub(repl, text)
            if rewritten != text:
                text, chars = rewritten, set(rewritten)
        return text


# what the initials (ASCII letters, matched ignoring ASCII case) can start with
_LATIN_LETTER = re.compile("[a-z]", re.IGNORECASE | re.ASCII)
_SPACED = re.compile(r"(?<=[\u4e00-\u9fff]) +(?=[\u4e00-\u9fff])")


def _join_spaced_words(text: str) -> str:
    """Join a note typed word by word ("刘某 扬言 不给 补偿 就 炸 了"): there the spaces
    separate words, not clauses, and would cut every threat in two. A note whose spaces end
    clauses ("张家和李家为排水沟干仗 老二头上被打了个口子") keeps them: its pieces are long."""
    pieces = text.split()
    if len(pieces) < 5:
        return text
    lengths = sorted(len(p) for p in pieces)
    if lengths[len(lengths) // 2] > 3:
        return text
    return _SPACED.sub("", text)


def _alternation(words: dict[str, str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))


@dataclass
class Segmenter:
    """Word boundaries from jieba, with the rules' lexicon as its user dictionary."""

    user_words: tuple[str, ...]
    _tokenizer: object | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _ready(self) -> object:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = _shared_tokenizer(self.user_words)
        return self._tokenizer

    def warm(self) -> None:
        """Build the tokenizer now (about a second) instead of on the first decision."""
        self._ready()

    def boundaries(self, text: str) -> tuple[frozenset[int], frozenset[int]]:
        """(token start offsets, token end offsets) of text."""
        tokenizer = self._ready()
        starts: set[int] = set()
        ends: set[int] = set()
        pos = 0
        for token in tokenizer.cut(text, HMM=False):  # type: ignore[attr-defined]
            starts.add(pos)
            pos += len(token)
            ends.add(pos)
        return frozenset(starts), frozenset(ends)

    def straddles(self, text: str, start: int, end: int, cache: dict[int, Bounds]) -> bool:
        """True when text[start:end] begins and ends inside words of its clause.

        Segmenting costs more than everything else a decision does, so a clause is cut only
        when a dictionary word could cross both ends of the term (the characters on each side
        form the beginning of some word), and once per decision (cache, keyed by clause start).
        """
        tokenizer = self._ready()
        freq: dict[str, int] = tokenizer.FREQ  # type: ignore[attr-defined]
        if start == 0 or end >= len(text):
            return False
        if text[start - 1 : start + 1] not in freq or text[end - 1 : end + 1] not in freq:
            return False
        lo = start
        while lo > 0 and _is_han(text[lo - 1]):
            lo -= 1
        found = cache.get(lo)
        if found is None:
            hi = end
            while hi < len(text) and _is_han(text[hi]):
                hi += 1
            found = self.boundaries(text[lo:hi])
            cache[lo] = found
        return (start - lo) not in found[0] and (end - lo) not in found[1]


Bounds = tuple[frozenset[int], frozenset[int]]


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


_TOKENIZERS: dict[tuple[str, ...], object] = {}
_TOKENIZERS_LOCK = threading.Lock()
# how often a lexicon word the dictionary lacks is taken to occur: enough to be cut whole
# where characters would otherwise be cut singly, not enough to beat a common longer word
USER_WORD_FREQ = 200


def _shared_tokenizer(words: Iterable[str]) -> object:
    """One jieba tokenizer per set of user words (reloading the same rules reuses it)."""
    key = tuple(sorted(set(words)))
    with _TOKENIZERS_LOCK:
        found = _TOKENIZERS.get(key)
        if found is not None:
            return found
        import jieba  # imported here: loading the dictionary takes about a second

        jieba.setLogLevel(logging.WARNING)
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()
        for word in key:
            if len(word) >= 2 and not tokenizer.FREQ.get(word):
                tokenizer.add_word(word, USER_WORD_FREQ)
        _TOKENIZERS[key] = tokenizer
        return tokenizer
