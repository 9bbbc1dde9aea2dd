"""Weighted lexicons and vulnerable-people word lists of the rules file, compiled at load."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from services.triage.prefilter import any_of, first_chars


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lexicon(_Model):
    """Weighted terms: plain substrings, or regular expressions written "re:…"."""

    terms: dict[str, float] = Field(min_length=1)
    _plain: tuple[tuple[str, float], ...] = PrivateAttr()
    _patterns: tuple[tuple[re.Pattern[str], float], ...] = PrivateAttr()

    @model_validator(mode="after")
    def _split(self) -> Lexicon:
        plain: list[tuple[str, float]] = []
        patterns: list[tuple[re.Pattern[str], float]] = []
        for term, weight in self.terms.items():
            if term.startswith("re:"):
                try:
                    patterns.append((re.compile(term[3:]), weight))
                except re.error as exc:
                    raise ValueError(f"term {term!r} is not a valid regex: {exc}") from exc
            else:
                plain.append((term, weight))
        self._plain = tuple(plain)
        self._patterns = tuple(patterns)
        return self

    @property
    def plain_terms(self) -> tuple[tuple[str, float], ...]:
        """Terms matched as substrings."""
        return self._plain

    @property
    def pattern_terms(self) -> tuple[tuple[re.Pattern[str], float], ...]:
        """Terms matched as regular expressions."""
        return self._patterns


class Vulnerable(_Model):
    """Words for vulnerable people; an entry written "re:…" is a regular expression."""

    elderly: tuple[str, ...]
    minor: tuple[str, ...]
    minor_not: tuple[str, ...] = ()
    disabled: tuple[str, ...]
    pregnant: tuple[str, ...]
    deceased: tuple[str, ...] = ()
    _regexes: dict[str, tuple[re.Pattern[str], ...]] = PrivateAttr()
    _plain: dict[str, tuple[str, ...]] = PrivateAttr()

    @model_validator(mode="after")
    def _compile(self) -> Vulnerable:
        regexes: dict[str, tuple[re.Pattern[str], ...]] = {}
        for group in ("elderly", "minor", "disabled", "pregnant"):
            compiled: list[re.Pattern[str]] = []
            for word in getattr(self, group):
                if word.startswith("re:"):
                    try:
                        compiled.append(re.compile(word[3:]))
                    except re.error as exc:
                        raise ValueError(f"{group}: {word!r} is not a valid regex: {exc}") from exc
            regexes[group] = tuple(compiled)
        self._regexes = regexes
        self._plain = {
            group: tuple(w for w in getattr(self, group) if not w.startswith("re:"))
            for group in ("elderly", "minor", "disabled", "pregnant")
        }
        return self

    def plain(self, group: str) -> tuple[str, ...]:
        """The group's plain words (matched as substrings)."""
        return self._plain.get(group, ())

    def regexes(self, group: str) -> tuple[re.Pattern[str], ...]:
        """The group's regular expressions."""
        return self._regexes.get(group, ())

    def groups(self) -> tuple[VulnerableGroup, ...]:
        """The groups in the order they are looked for, as plain tuples for the hot path."""
        order = (
            ("老人", "elderly", ()),
            ("残疾人", "disabled", ()),
            ("孕产妇", "pregnant", ()),
            ("未成年人", "minor", self.minor_not),
        )
        return tuple(
            VulnerableGroup(
                label,
                group,
                self.plain(group),
                self.regexes(group),
                not_inside,
                any_of(self.plain(group), (r.pattern for r in self.regexes(group))),
            )
            for label, group, not_inside in order
        )


class VulnerableGroup(NamedTuple):
    """One group of vulnerable people: its words, and one regex that finds whether any is there."""

    label: str
    group: str
    plain: tuple[str, ...]
    regexes: tuple[re.Pattern[str], ...]
    not_inside: tuple[str, ...]
    present: re.Pattern[str] | None


@dataclass(frozen=True)
class TypeLexicon:
    """One scored lexicon at decision time (a dispute type, or the `other` anchors)."""

    code: str
    negatable: bool
    pattern_terms: tuple[tuple[re.Pattern[str], float], ...]
    requires_any: tuple[str, ...]
    requires_also: tuple[str, ...] = ()
    # per pattern term, the characters its match can start with (None: any)
    pattern_starts: tuple[frozenset[str] | None, ...] = ()

    def __post_init__(self) -> None:
        if len(self.pattern_starts) != len(self.pattern_terms):
            starts = tuple(first_chars(r.pattern) for r, _ in self.pattern_terms)
            object.__setattr__(self, "pattern_starts", starts)
