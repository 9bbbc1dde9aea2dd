"""Cheap tests in front of the rules' pattern banks: skip a bank that cannot match a text.

A bank (a word list, a set of regular expressions applied one after the other) costs a call
per member even when nothing in it occurs in the text, and most reports hold none of a bank's
words. One alternation of all members answers "does any member match anywhere?" in a single
scan: `search` tries every alternative at every position, so it finds a match exactly when
one member has one. Patterns that would not mean the same inside an alternation (numbered or
named back-references, conditionals, global inline flags, clashing group names) get no
prefilter: the bank is then always run, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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
