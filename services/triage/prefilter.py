"""Cheap tests in front of the rules' pattern banks: skip what cannot match a text.

A bank (a word list, a set of regular expressions applied one after the other) costs a call
per member even when nothing in it occurs in the text, and most reports hold none of a bank's
words. Two tests, both exact (they never skip a pattern that would have matched):

- `any_of`: one alternation of all members answers "does any member match anywhere?" in a
  single scan: `search` tries every alternative at every position, so it finds a match
  exactly when one member has one.
- `first_chars`: the characters a pattern's match can begin with (lookarounds and anchors
  consume nothing and are stepped over); a text holding none of them cannot match it, and a
  set test against the text's characters costs far less than a scan.

A pattern whose meaning these cannot follow (back-references, conditionals, inline flags,
classes such as digits or a negated set at its start, or one that can match the empty string)
gets no prefilter: it is then always run, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# the standard library's regular-expression parser (re._parser since Python 3.11) is the only
# way to read a pattern's structure; a pattern it cannot read gets no prefilter
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

# back-references and conditionals refer to group numbers or names, which an alternation
# renumbers or may repeat: such a member is left without a prefilter (conservatively: a
# doubled backslash before a digit also counts)
_REFERS_TO_GROUPS = re.compile(r"\\[1-9]|\\g<|\(\?P=|\(\?\(")


def any_of(words: Iterable[str] = (), patterns: Iterable[str] = ()) -> re.Pattern[str] | None:
    """A regex that matches somewhere in a text iff one of the words occurs in it or one of the
    patterns matches it; None when no such single regex can be built safely (or both are
    empty): the caller then runs its bank unfiltered."""
    words, patterns = tuple(words), tuple(patterns)
    if not words and not patterns:
        return None
    for p in patterns:
        if _REFERS_TO_GROUPS.search(p):
            return None
        try:
            flags = re.compile(p).flags
        except re.error:
            return None
        if flags & ~re.UNICODE:  # a global inline flag, e.g. (?i), would apply to all members
            return None
    members = [re.escape(w) for w in sorted(set(words), key=len, reverse=True)]
    members += [f"(?:{p})" for p in patterns]
    try:
        return re.compile("|".join(members))
    except re.error:  # e.g. one group name used by two members
        return None


# a character class spanning more code points than this is "anything" (no prefilter)
_MAX_RANGE = 256


def first_chars(pattern: str) -> frozenset[str] | None:
    """The characters a match of `pattern` can start with, or None when that cannot be told
    (or the pattern can match the empty string, which starts with no character)."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError):
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None  # (?i): a letter's other case, and a few non-ASCII look-alikes, match too
    found = _first(list(parsed))
    if found is None or found[1]:
        return None
    return frozenset(found[0])


def _first(items: list[tuple[Any, Any]]) -> tuple[set[str], bool] | None:
    """(the characters the sequence can start with, whether it can match nothing), or None."""
    chars: set[str] = set()
    for op, av in items:
        one = _first_of(op, av)
        if one is None:
            return None
        chars |= one[0]
        if not one[1]:
            return chars, False
    return chars, True


def _first_of(op: Any, av: Any) -> tuple[set[str], bool] | None:
    if op is sre.LITERAL:
        return {chr(av)}, False
    if op is sre.IN:
        return _first_in(av)
    if op is sre.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        if add_flags or del_flags:
            return None  # (?i:…) and the like
        return _first(list(body))
    if op is sre.BRANCH:
        chars: set[str] = set()
        empty = False
        for alternative in av[1]:
            one = _first(list(alternative))
            if one is None:
                return None
            chars |= one[0]
            empty = empty or one[1]
        return chars, empty
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        low, _high, body = av
        one = _first(list(body))
        if one is None:
            return None
        return one[0], one[1] or low == 0
    if op is sre.ATOMIC_GROUP:
        return _first(list(av))
    if op in (sre.ASSERT, sre.ASSERT_NOT, sre.AT):
        return set(), True  # consumes nothing: the match starts with what follows
    return None  # ANY, NOT_LITERAL, GROUPREF, GROUPREF_EXISTS, CATEGORY…


def _first_in(av: list[tuple[Any, Any]]) -> tuple[set[str], bool] | None:
    chars: set[str] = set()
    for op, value in av:
        if op is sre.LITERAL:
            chars.add(chr(value))
        elif op is sre.RANGE and value[1] - value[0] < _MAX_RANGE:
            chars.update(chr(c) for c in range(value[0], value[1] + 1))
        else:
            return None  # NEGATE, CATEGORY (digits, spaces…), a wide range
    return chars, False


def required_chars(pattern: str) -> frozenset[str] | None:
    """Characters of which a text must hold at least one for `pattern` to match in it, or None
    when that cannot be told.

    A match of a sequence holds a match of each of its items that cannot be empty, so any one
    such item's set will do; the smallest is taken (the likeliest to be missing from a text).
    An alternation needs one of its alternatives' sets; a lookaround that must hold needs its
    own characters in the text around the match.
    """
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError):
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    found = _required(list(parsed))
    return frozenset(found) if found is not None else None


def _required(items: list[tuple[Any, Any]]) -> set[str] | None:
    best: set[str] | None = None
    for op, av in items:
        one = _required_of(op, av)
        if one is not None and (best is None or len(one) < len(best)):
            best = one
    return best


def _required_of(op: Any, av: Any) -> set[str] | None:
    if op is sre.LITERAL:
        return {chr(av)}
    if op is sre.IN:
        found = _first_in(av)
        return found[0] if found is not None else None
    if op is sre.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        return None if add_flags or del_flags else _required(list(body))
    if op is sre.BRANCH:
        chars: set[str] = set()
        for alternative in av[1]:
            one = _required(list(alternative))
            if one is None:
                return None
            chars |= one
        return chars
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        low, _high, body = av
        return _required(list(body)) if low > 0 else None
    if op is sre.ATOMIC_GROUP:
        return _required(list(av))
    if op is sre.ASSERT:  # (?=…) or (?<=…): its characters are in the text beside the match
        _direction, body = av
        return _required(list(body))
    return None  # ANY, NOT_LITERAL, ASSERT_NOT, AT, GROUPREF, CATEGORY…
