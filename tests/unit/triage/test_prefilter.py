"""The prefilter in front of a pattern bank says "maybe" whenever a member matches."""

from __future__ import annotations

import random
import re

from hypothesis import given
from hypothesis import strategies as st

from services.triage.normalise import Normaliser, _join_spaced_words
from services.triage.numbers import NumberWords
from services.triage.prefilter import any_of, first_chars, required_chars
from services.triage.rules import Rules
from tests.unit.triage.golden.make_golden import golden_inputs

WORDS = ("老人", "老人家", "孩子", "孕妇")
PATTERNS = (r"(?<![大学])[一二三]年级", r"[初高][一二](?:学生|班)", r"(?:读|上)(?:小学|初中)")


@given(st.text(alphabet="老人家孩子孕妇大学一二三年级初高生班读上小初中，", max_size=20))
def test_matches_exactly_when_a_member_does(text: str) -> None:
    present = any_of(WORDS, PATTERNS)
    assert present is not None
    member = any(w in text for w in WORDS) or any(re.search(p, text) for p in PATTERNS)
    assert (present.search(text) is not None) == member


def test_no_prefilter_when_an_alternation_would_change_a_member() -> None:
    assert any_of((), (r"(.)\1",)) is None  # a back-reference renumbered
    assert any_of((), (r"(?P<x>a)(?P=x)",)) is None
    assert any_of((), ("(?i)abc",)) is None  # a global flag would apply to every member
    assert any_of((), ("(?P<x>a)", "(?P<x>b)")) is None  # one group name twice
    assert any_of() is None


def test_every_vulnerable_group_has_a_prefilter(rules: Rules) -> None:
    groups = rules.compiled.vulnerable_groups
    assert [g.group for g in groups] == ["elderly", "disabled", "pregnant", "minor"]
    assert all(g.present is not None for g in groups)


SHAPES = (
    r"([打追砍])紧(?:交)?",
    r"(?<=[在还正])削(?![皮果])",
    r"(?<=[打骂])伊|伊(?=[老屋])",
    r"(?:抽|操)?起(?=[^，。]{0,4}刀)",
    r"(?:a|b?)c",
    r"(?:(?:喝|吃)[^，]{0,4}(?:农药))|x",
    r"\b等(?:到|住)",
    r"(?>打|起)+人",
)


@given(
    st.text(alphabet="打追砍紧交在还正削皮果骂伊老屋抽操起刀，。abcx喝吃农药等到住人 ", max_size=16)
)
def test_a_text_without_a_first_character_never_matches(text: str) -> None:
    for pattern in SHAPES:
        starts = first_chars(pattern)
        assert starts is not None, pattern
        if starts.isdisjoint(text):
            assert re.search(pattern, text) is None, (pattern, text)


def test_no_first_characters_when_they_cannot_be_told() -> None:
    for pattern in ("a*", "(?i)abc", "(?i:a)b", r"\dabc", "[^a]b", ".b", "(?:x|)y?"):
        assert first_chars(pattern) is None, pattern
    assert first_chars("(?<=[在还])削") == frozenset("削")
    assert first_chars("(?:a|b?)c") == frozenset("abc")


def _unfiltered(n: Normaliser, text: str) -> str:
    """The normaliser's steps with every rewrite and the initials always run."""
    text = _join_spaced_words(text.translate(n.simplify))
    if n.initials_re is not None:
        text = n.initials_re.sub(lambda m: n.initials[m.group(0).lower()], text)
    if n.words_re is not None:
        text = n.words_re.sub(lambda m: n.words[m.group(0)], text)
    for regex, repl in n.rewrites:
        text = regex.sub(repl, text)
    return text


def test_the_normaliser_skips_only_rewrites_that_cannot_apply(rules: Rules) -> None:
    n = rules.compiled.normalise
    assert sum(s is not None for s in n.rewrite_starts) >= len(n.rewrites) - 2
    # every character a rewrite or an initial looks for, and the texts of the golden reports
    alphabet = "".join(sorted(set().union(*(s for s in n.rewrite_starts if s)))) + "SqWgsq ，。在家"
    rng = random.Random(3)
    texts = ["".join(rng.choices(alphabet, k=rng.randint(1, 30))) for _ in range(3000)]
    texts += [inp.text for _, inp in golden_inputs()]
    for text in texts:
        assert n(text) == _unfiltered(n, text), text


def test_the_pair_index_keeps_the_first_character_index_order(rules: Rules) -> None:
    c = rules.compiled
    for ch, entries in c.term_index.items():
        for pair in {t[:2] for t, _ in entries if len(t) >= 2}:
            want = [e for e in entries if e[0].startswith(pair)]
            assert list(c.terms_by_pair[pair]) == want
        singles = [e for e in entries if len(e[0]) == 1]
        assert singles == ([c.single_char_terms[ch]] if ch in c.single_char_terms else [])


def test_factor_specs_and_type_patterns_carry_their_first_characters(rules: Rules) -> None:
    c = rules.compiled
    assert all(f.starts is not None for f in c.factors)
    for lex in c.types:
        assert len(lex.pattern_starts) == len(lex.pattern_terms)


@given(
    st.text(alphabet="打追砍紧交在还正削皮果骂伊老屋抽操起刀，。abcx喝吃农药等到住人 ", max_size=9)
)
def test_a_text_without_a_required_character_never_matches(text: str) -> None:
    for pattern in SHAPES:
        needs = required_chars(pattern)
        if needs is not None and needs.isdisjoint(text):
            assert re.search(pattern, text) is None, (pattern, text)


def test_required_characters() -> None:
    assert required_chars("(?:打|撞|砸)[^，]{0,6}(?:住院|进医院)") == frozenset("住进")
    assert required_chars("(?:甲|乙)(?=人)") == frozenset("人")
    assert required_chars("x?y*") is None
    assert required_chars("(?i)abc") is None


@given(
    st.text(
        alphabet="0123456789一二三十百千万元块钱岁了次第回月个人名每欠拖今年，。 w", max_size=14
    )
)
def test_the_number_finders_skip_only_texts_they_cannot_match(text: str) -> None:
    words = NumberWords()
    for name, needs in words.needs.items():
        regex = getattr(words, name)
        if not words.may_match(name, text):
            assert needs is not None and regex.search(text) is None, (name, text)
