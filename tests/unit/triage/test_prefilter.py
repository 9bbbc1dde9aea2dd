"""The prefilter in front of a pattern bank says "maybe" whenever a member matches."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from services.triage.prefilter import any_of
from services.triage.rules import Rules

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
