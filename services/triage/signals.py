"""What the report text says: dispute-type scores and severity factors, driven by Rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.triage.grammar import DangerGrammar
from services.triage.numbers import (
    Quantity,
    attached_age,
    find_ages,
    find_elder_ages,
    find_money,
    find_people_counts,
    find_repeat_count,
)
from services.triage.rules import SEVERITY_ORDER, CompiledFactor, Rules


@dataclass(frozen=True)
class Factor:
    """One severity factor with the words that raised it."""

    level: str
    factor: str
    evidence: str


@dataclass(frozen=True)
class TypeChoice:
    """The chosen dispute type and why."""

    code: str
    score: float
    evidence: str
    # the strongest other type and its score, when there is one
    runner_up: tuple[str, float] | None = None


@dataclass
class Signals:
    """Everything extracted from one report before routing."""

    type_choice: TypeChoice
    factors: list[Factor] = field(default_factory=list)
    amount_yuan: int | None = None
    people_count: int | None = None
    company_party: str | None = None
    # why the decision may be wrong: conflicting danger cues, split type evidence
    review_cues: list[str] = field(default_factory=list)
    # the text as the rules read it (normalised), for the learned danger reader
    text: str = ""
    # a crowd only planned (三十几个约好明天去…拉横幅): DOMAIN §3 makes it high, not critical, and
    # the learned reader, which cannot tell tomorrow from now, may not raise it
    planned_gathering: str = ""

    @property
    def severity(self) -> str:
        """The highest factor level, or low."""
        best = "low"
        for f in self.factors:
            if SEVERITY_ORDER[f.level] > SEVERITY_ORDER[best]:
                best = f.level
        return best


def is_negated(text: str, start: int, end: int, rules: Rules) -> bool:
    """True when a negation cue sits shortly before (or inside) text[start:end] in one clause."""
    neg = rules.negation
    left = max(0, start - neg.window)
    segment_start = left
    for i in range(start - 1, left - 1, -1):
        if text[i] in neg.stops:
            segment_start = i + 1
            break
    segment = text[segment_start:end]
    trigger_at = start - segment_start
    for cue in neg.cues:
        pos = segment.find(cue)
        while pos >= 0:
            if not any(_inside(segment, pos, n) for n in neg.non_negating) and not any(
                b in segment[pos + len(cue) : trigger_at] for b in neg.scope_breakers
            ):
                return True
            pos = segment.find(cue, pos + 1)
    return _clause_negated(text, start, rules)


def _clause_negated(text: str, start: int, rules: Rules) -> bool:
    """True when a subject-bearing cue ("没有人", "无人") opens the clause before the trigger."""
    neg = rules.negation
    lo = start
    while lo > 0 and text[lo - 1] not in neg.stops:
        lo -= 1
    before = text[lo:start]
    for cue in neg.clause_cues:
        pos = before.rfind(cue)
        if (
            pos >= 0
            and not any(b in before[pos + len(cue) :] for b in neg.scope_breakers)
            and not any(_inside(before, pos, n) for n in neg.non_negating)
        ):
            return True
    return False


def _inside(segment: str, pos: int, compound: str) -> bool:
    """True when position pos falls inside an occurrence of compound (e.g. 无 in 毫无)."""
    lo = max(0, pos - len(compound) + 1)
    hit = segment.find(compound, lo, pos + len(compound))
    return 0 <= hit <= pos < hit + len(compound)


def _clause(text: str, start: int, end: int, stops: str) -> str:
    """The clause around text[start:end], bounded by punctuation."""
    lo = start
    while lo > 0 and text[lo - 1] not in stops:
        lo -= 1
    hi = end
    while hi < len(text) and text[hi] not in stops:
        hi += 1
    return text[lo:hi]


def _context(text: str, start: int, end: int, pad: int = 6) -> str:
    """The matched words with a little of their clause around them, for people to read."""
    stops = "，。；！？,;!?\n 　"
    lo = start
    while lo > max(0, start - pad) and text[lo - 1] not in stops:
        lo -= 1
    hi = end
    while hi < min(len(text), end + pad) and text[hi] not in stops:
        hi += 1
    return text[lo:hi]


def score_types(
    text: str, category: str | None, party_names: tuple[str, ...], rules: Rules
) -> TypeChoice:
    """Weighted lexicon vote over the text, with the source category and party names as hints."""
    scores: dict[str, float] = {}
    evidence: dict[str, list[str]] = {}
    compiled = rules.compiled
    in_text = _lexicon_hits(text, rules, segmented=True)
    in_names = _lexicon_hits(" ".join(party_names), rules) if party_names else {}
    chars = set(text)
    for lex in compiled.types:
        code = lex.code
        if lex.requires_any and not any(r in text for r in lex.requires_any):
            continue
        if lex.requires_also and not any(r in text for r in lex.requires_also):
            continue
        matched = [
            (t, w)
            for t, w in in_text.get(code, ())
            if not (lex.negatable and _all_negated(text, t, rules))
        ]
        seen = {t for t, _ in matched}
        from_names = [(t, w / 2) for t, w in in_names.get(code, ()) if w > 0 and t not in seen]
        # a term inside a longer matched term ("物业" in "物业公司") is not counted twice
        kept = [(t, w) for t, w in matched if not any(t != u and t in u for u, _ in matched)]
        for (regex, weight), starts in zip(lex.pattern_terms, lex.pattern_starts, strict=True):
            if starts is not None and starts.isdisjoint(chars):
                continue  # no character its match could start with
            m = regex.search(text)
            if m:
                kept.append((m.group(0), weight))
        total = sum(w for _, w in kept) + sum(w for _, w in from_names)
        hits = [t for t, _ in kept] + [f"当事人:{t}" for t, _ in from_names]
        scores[code] = total
        evidence[code] = hits
    if category:
        for key, code in rules.categories.map.items():
            if key in category:
                scores[code] = scores.get(code, 0.0) + rules.categories.weight
                evidence.setdefault(code, []).append(f"类别:{category}")
                break
    priority = compiled.priority
    ranked = sorted(scores, key=lambda c: (-scores[c], priority.get(c, 99)))
    best = ranked[0] if ranked else "other"
    if scores.get(best, 0.0) < rules.thresholds.min_type_score:
        return TypeChoice("other", 0.0, "未命中任何纠纷类型词")
    if best == rules.surface_type and len(ranked) > 1:
        under = ranked[1]
        if scores[under] >= rules.thresholds.underlying_min_score:
            why = "、".join(evidence[under])
            fight = "、".join(evidence[best])
            third = next((c for c in ranked[2:3] if scores[c] > 0), None)
            runner = (third, scores[third]) if third else None
            return TypeChoice(under, scores[under], f"{why}（冲突之下的纠纷；{fight}）", runner)
    second = next((c for c in ranked[1:2] if scores[c] > 0), None)
    runner_up = (second, scores[second]) if second else None
    return TypeChoice(best, scores[best], "、".join(evidence[best]), runner_up)


def _lexicon_hits(
    text: str, rules: Rules, *, segmented: bool = False
) -> dict[str, list[tuple[str, float]]]:
    """Every lexicon term present in text, once, grouped by dispute type.

    With `segmented`, a term of two or more characters counts only where a word of the text
    starts or ends with it: "工人" inside "施工人员" straddles two words and is no evidence.
    """
    by_pair = rules.compiled.terms_by_pair
    single = rules.compiled.single_char_terms
    found: set[str] = set()
    out: dict[str, list[tuple[str, float]]] = {}
    clauses: dict[int, tuple[frozenset[int], frozenset[int]]] = {}
    segmenter = rules.compiled.segmenter
    for i, ch in enumerate(text):
        # the terms that start with this character and the next, longest first, then the
        # character itself when it is a term: the order of the first-character index, without
        # trying every term of a common character (人, 打) at every position
        candidates = by_pair.get(text[i : i + 2], ())
        one = single.get(ch)
        if one is not None:
            candidates = (*candidates, one)
        for term, entries in candidates:
            if term not in found and text.startswith(term, i):
                if (
                    segmented
                    and len(term) >= 2
                    and segmenter.straddles(text, i, i + len(term), clauses)
                ):
                    continue
                found.add(term)
                for code, weight in entries:
                    out.setdefault(code, []).append((term, weight))
    return out


def find_company(text: str, party_names: tuple[str, ...], rules: Rules) -> str | None:
    """A company/factory/enterprise among the parties, or named as counterparty in the text."""
    for name in party_names:
        if _has_company_marker(name, rules):
            return name
    for marker in rules.company_markers:
        pos = text.find(marker)
        while pos >= 0:
            if not any(_inside(text, pos, n) for n in rules.company_not):
                return _context(text, pos, pos + len(marker), 6)
            pos = text.find(marker, pos + 1)
    return None


def _has_company_marker(name: str, rules: Rules) -> bool:
    for marker in rules.company_markers:
        pos = name.find(marker)
        if pos >= 0 and not any(_inside(name, pos, n) for n in rules.company_not):
            return True
    return False


def _all_negated(text: str, term: str, rules: Rules) -> bool:
    pos = text.find(term)
    while pos >= 0:
        if not is_negated(text, pos, pos + len(term), rules):
            return False
        pos = text.find(term, pos + 1)
    return True


def pattern_factors(
    text: str, dispute_type: str, rules: Rules, cues: list[str] | None = None
) -> list[Factor]:
    """Severity factors found by the rules' regular expressions, skipping negated mentions.

    A critical or high match dropped because it is inside hyperbole or in a sentence that says
    it is past or settled, or a critical one dropped because it is negated, is a reason for
    doubt: it is added to `cues`.
    """
    out: list[Factor] = []
    compiled = rules.compiled
    stops = rules.negation.stops
    hyperbole: list[tuple[int, int]] | None = None  # read at the first match, if any
    grammar = rules.danger_grammar
    # a hand-written critical factor is dropped when settled or long ago (去年喝过农药，被救回来了)
    settled = grammar.aspect.settled + grammar.aspect.long_ago if grammar else ()
    now_words = grammar.aspect.now if grammar else ()
    chars = set(text)
    raised: set[tuple[str, str]] = set()  # (factor, level) of out
    for spec in compiled.factors:
        if dispute_type in spec.not_for_types:
            continue
        if (spec.factor, spec.level) in raised:
            continue
        if spec.requires_in_text and not all(
            any(w in text for w in group) for group in spec.requires_in_text
        ):
            continue
        if spec.starts is not None and spec.starts.isdisjoint(chars):
            continue  # no character its matches start with: no match
        serious = spec.level in ("critical", "high")
        for m in spec.regex.finditer(text):
            doubt = ""
            if hyperbole is None:
                hyperbole = _spans(compiled.hyperbole, text)
            if hyperbole and any(a < m.end() and m.start() < b for a, b in hyperbole):
                doubt = "夸张"
            elif spec.negatable and is_negated(text, m.start(), m.end(), rules):
                # "无人受伤" is a plain statement; a danger denied ("没带刀") is worth a look
                doubt = "否定" if spec.level == "critical" else "-"
            elif spec.goods_context and (goods := _goods(text, m.start(), m.end(), spec, rules)):
                doubt = f"疑为争议商品（{goods}）"
            else:
                words = spec.not_if_sentence_has or (settled if spec.level == "critical" else ())
                past = _past_or_settled(text, m.start(), m.end(), words, now_words, grammar)
                if past:
                    doubt = f"已过去或已平息（{past}）"
            if doubt:
                if serious and cues is not None and doubt != "-":
                    ctx = _context(text, m.start(), m.end())
                    cues.append(f"{spec.level}|{spec.factor}{doubt}：{ctx}")
                continue
            if spec.not_if_clause_has:
                clause = _clause(text, m.start(), m.end(), stops)
                if any(w in clause for w in spec.not_if_clause_has):
                    continue
            if spec.requires_nearby or spec.not_nearby:
                w = spec.nearby_window
                near = text[max(0, m.start() - w) : m.start()] + text[m.end() : m.end() + w]
                if spec.requires_nearby and not any(x in near for x in spec.requires_nearby):
                    continue
                if any(x in near for x in spec.not_nearby):
                    continue
            evidence = _context(text, m.start(), m.end())
            if grammar is not None and spec.element.startswith("threats"):
                # who makes the threat: the reporter, a relative or the other party
                who = grammar.who_of(_clause(text, m.start(), m.end(), stops))
                if who is not None:
                    evidence = f"{evidence}（{WHO_LABELS[who]}）"
            out.append(Factor(spec.level, spec.factor, evidence))
            raised.add((spec.factor, spec.level))
            break
    return out


SENTENCE_STOPS = "。；！？;!?\n"
WHO_LABELS = {"first_person": "本人", "relative": "亲属", "other_party": "对方"}


def _goods(text: str, start: int, end: int, spec: CompiledFactor, rules: Rules) -> str | None:
    """A goods word in the match's clause, unless its sentence threatens or points with it."""
    clause = _clause(text, start, end, rules.negation.stops)
    goods = next((g for g in spec.goods_context if g in clause), None)
    if goods is None:
        return None
    sentence = _clause(text, start, end, SENTENCE_STOPS)
    return None if any(w in sentence for w in spec.goods_unless) else goods


def _past_or_settled(
    text: str,
    start: int,
    end: int,
    words: tuple[str, ...],
    now_words: tuple[str, ...],
    grammar: DangerGrammar | None = None,
) -> str | None:
    """A word of `words` that puts text[start:end] in the past or says it is settled.

    Read in the match's sentence: after the match it always counts ("…，后已调解和好"); before
    it, only when nothing between says the danger is back or now ("已调解，但今天又拿刀…").
    A settled word denied is a commitment (这不是开玩笑), and a past word that dates the claim
    (去年工资, 上个月的工钱) says nothing of when the danger is: neither counts.
    """
    if not words:
        return None
    sentence_start = start
    while sentence_start > 0 and text[sentence_start - 1] not in SENTENCE_STOPS:
        sentence_start -= 1
    sentence_end = end
    while sentence_end < len(text) and text[sentence_end] not in SENTENCE_STOPS:
        sentence_end += 1
    for w in words:
        pos = text.find(w, end, sentence_end)
        while pos >= 0:
            if _counts_as_past(text, pos, w, grammar):
                return w
            pos = text.find(w, pos + 1, sentence_end)
    before = text[sentence_start:start]
    for w in words:
        pos = before.rfind(w)
        if (
            pos >= 0
            and not any(n in before[pos + len(w) :] for n in now_words)
            and _counts_as_past(text, sentence_start + pos, w, grammar)
        ):
            return w
    return None


def _counts_as_past(text: str, pos: int, word: str, grammar: DangerGrammar | None) -> bool:
    """False when the past or settled word at `pos` is denied or only dates the claim."""
    if grammar is None:
        return True
    aspect = grammar.aspect
    if any(text.endswith(d, 0, pos) for d in aspect.denied):
        return False
    dated = grammar.compiled_dated_claim()
    return not (dated is not None and dated.match(text, pos + len(word)))


def _spans(regex: re.Pattern[str] | None, text: str) -> list[tuple[int, int]]:
    """Spans of every match of regex in text (none when regex is None)."""
    if regex is None:
        return []
    return [m.span() for m in regex.finditer(text)]


def vulnerable_factor(text: str, rules: Rules) -> Factor | None:
    """Elderly, minor, disabled or pregnant people directly involved (words or stated ages)."""
    t = rules.thresholds
    vul = rules.vulnerable
    for q in find_ages(text, rules.compiled.numbers):
        if q.value >= t.elderly_age:
            return Factor("medium", "vulnerable", f"老人：{q.evidence}")
        if q.value < t.minor_age:
            return Factor("medium", "vulnerable", f"未成年人：{q.evidence}")
    for q in find_elder_ages(text, rules.compiled.numbers):
        if q.value >= t.elderly_age:
            return Factor("medium", "vulnerable", f"老人：{q.evidence}")
    for label, group, plain, regexes, not_inside, present in rules.compiled.vulnerable_groups:
        if present is not None and present.search(text) is None:
            continue  # none of the group's words in the text
        spans = [(pos, pos + len(w)) for w in plain for pos in _positions(text, w)] + [
            m.span() for r in regexes for m in r.finditer(text)
        ]
        # "婆婆才58": a stated age under the threshold outweighs the word, wherever it recurs;
        # so does an adult's age beside a minor's word ("学生（19岁）")
        younger = {
            text[start:end]
            for start, end in spans
            if group in ("elderly", "minor")
            and (age := attached_age(text, start, end, rules.compiled.numbers)) is not None
            and (age < t.elderly_age if group == "elderly" else age >= t.minor_age)
        }
        for start, end in spans:
            after = text[end : end + 4]
            if (
                text[start:end] in younger
                # said not to be there: 家里没有孩子, 屋里无老人
                or text[max(0, start - 2) : start] in ("没有", "没得")
                or text[max(0, start - 1) : start] in ("没", "无")
                or any(_inside(text, start, n) for n in not_inside)
                or any(d in after for d in vul.deceased)
            ):
                continue
            return Factor("medium", "vulnerable", f"{label}：{text[start:end]}")
    return None


def _positions(text: str, word: str) -> list[int]:
    """Every start position of word in text."""
    out: list[int] = []
    pos = text.find(word)
    while pos >= 0:
        out.append(pos)
        pos = text.find(word, pos + 1)
    return out


def extract(
    text: str,
    category: str | None,
    party_names: tuple[str, ...],
    repeat_count: int,
    rules: Rules,
) -> Signals:
    """Type, amounts, head count and all severity factors of one report."""
    t = rules.thresholds
    text = rules.compiled.normalise(text)
    party_names = tuple(n.translate(rules.compiled.simplify) for n in party_names)
    choice = score_types(text, category, party_names, rules)
    counts = [
        q
        for q in find_people_counts(text, rules.compiled.numbers)
        if not _near(text, q.evidence, rules.people_not)
    ]
    people = max((q.value for q in counts), default=None)
    people_ev = next((q.evidence for q in counts if q.value == people), "")
    for word, value in rules.crowd_words.items():
        if word in text and (people is None or value > people):
            people, people_ev = value, word
    amount, _money = find_money(text, people, rules.compiled.numbers)
    sig = Signals(choice, amount_yuan=amount, people_count=people, text=text)
    sig.factors.extend(pattern_factors(text, choice.code, rules, sig.review_cues))
    surface = _surface_choice(choice, sig.factors, rules)
    if surface is not None:
        sig.type_choice = surface

    gathering = _first_unnegated(text, rules.gathering_words, rules, rules.gathering_future)
    if gathering is None and people is not None and people >= t.people_high:
        sig.planned_gathering = _first_unnegated(text, rules.gathering_words, rules) or ""
    if gathering and people is not None and people >= t.people_critical_gathering:
        sig.factors.append(Factor("critical", "crowd", f"{people}人（{people_ev}）；{gathering}"))
    elif gathering and people is not None and people >= t.people_high:
        sig.factors.append(Factor("high", "crowd", f"{people}人（{people_ev}）；{gathering}"))
    elif people is not None and people >= t.people_high:
        # a crowd described by what it does in the clause of its count: 四五十人在门口对峙
        acting = _word_in_sentence(text, people_ev, rules.crowd_verbs, rules)
        level = "critical" if people >= t.people_critical_gathering else "high"
        if acting:
            sig.factors.append(Factor(level, "crowd", f"{people}人（{people_ev}）；{acting}"))
        else:
            sig.factors.append(Factor("high", "many_people", f"涉及{people}人：{people_ev}"))
    if choice.code == "labour" and people is not None and people >= t.people_high:
        wage = next((w for w in rules.wage_words if w in text), None)
        if wage:
            sig.factors.append(Factor("high", "wage_arrears_group", f"{people}名劳动者被欠{wage}"))

    text_repeat = find_repeat_count(
        text, rules.report_words, rules.compiled.numbers, rules.repeat_periods
    )
    for phrase, count in rules.compiled.repeat_phrases:
        m = phrase.search(text)
        if m and (text_repeat is None or count > text_repeat.value):
            text_repeat = Quantity(count, m.group(0))
    repeats = max(repeat_count, text_repeat.value if text_repeat else 1)
    rep_ev = text_repeat.evidence if text_repeat and text_repeat.value >= repeats else "并单次数"
    if repeats >= t.repeat_high:
        sig.factors.append(Factor("high", "repeat", f"第{repeats}次反映（{rep_ev}）"))
    elif repeats >= t.repeat_medium:
        sig.factors.append(Factor("medium", "repeat", f"第{repeats}次反映（{rep_ev}）"))

    if amount is not None and amount >= t.money_medium_yuan:
        sig.factors.append(Factor("medium", "money", f"涉及金额约{amount}元"))
    vulnerable = vulnerable_factor(text, rules)
    if vulnerable:
        sig.factors.append(vulnerable)
    if choice.code in rules.compiled.company_types:
        sig.company_party = find_company(text, party_names, rules)
    sig.review_cues = _review_cues(text, sig, rules)
    return sig


def _surface_choice(choice: TypeChoice, factors: list[Factor], rules: Rules) -> TypeChoice | None:
    """The surface type for a report that names no dispute but a fight or a weapon in use.

    DOMAIN §3: public_order is for fights, harassment or damage with no other dispute
    underneath. A report with no type word at all ("两个醉汉打起来了，一个摸出水果刀") whose
    danger is a fight or a weapon is that, not `other`.
    """
    if choice.code != "other" or choice.score > 0 or rules.surface_type is None:
        return None
    hit = next(
        (
            f
            for f in factors
            if f.factor in rules.surface_factors
            and not any(w in f.evidence for w in rules.surface_not)
        ),
        None,
    )
    if hit is None:
        return None
    return TypeChoice(rules.surface_type, 0.0, f"无其他纠纷，冲突本身：{hit.evidence}")


def _review_cues(text: str, sig: Signals, rules: Rules) -> list[str]:
    """Why the decision may be wrong; empty when the evidence agrees with itself.

    A dropped danger match (negated, hyperbole, past) matters only when it is more serious
    than what was decided; a weapon noun nobody is said to handle, and a runner-up type
    nearly as strong as the winner, are doubts whatever the severity.
    """
    order = SEVERITY_ORDER
    decided = order[sig.severity]
    cues: list[str] = []
    for raw in sig.review_cues:
        level, _, cue = raw.partition("|")
        if order.get(level, 0) > decided and cue not in cues:
            cues.append(cue)
    noun = rules.compiled.weapon_noun
    if noun is not None and not any(f.factor == "weapon" for f in sig.factors):
        m = noun.search(text)
        goods = rules.danger_grammar.weapons.goods_context if rules.danger_grammar else ()
        if m and decided < order["critical"]:
            clause = _clause(text, m.start(), m.end(), rules.negation.stops)
            if not any(g in clause for g in goods):
                cues.append(f"凶器名词而未见持握或使用：{_context(text, m.start(), m.end())}")
    choice, policy = sig.type_choice, rules.review
    if choice.runner_up is not None and choice.code != "other":
        code, score = choice.runner_up
        if score >= policy.type_split_min and score >= policy.type_split_ratio * choice.score:
            cues.append(f"类型证据分歧：{choice.code} {choice.score:g} / {code} {score:g}")
    return cues


def _word_in_sentence(text: str, evidence: str, words: tuple[str, ...], rules: Rules) -> str | None:
    """The first of words in the clause holding evidence, not negated and not only planned."""
    pos = text.find(evidence)
    if pos < 0 or not words:
        return None
    stops = rules.negation.stops
    clause = _clause(text, pos, pos + len(evidence.rstrip(stops)), stops)
    return _first_unnegated(clause, words, rules, rules.gathering_future)


def _near(text: str, evidence: str, words: tuple[str, ...], pad: int = 4) -> bool:
    """True when any of words occurs within pad characters around evidence."""
    pos = text.find(evidence)
    if pos < 0:
        return False
    window = text[max(0, pos - pad) : pos + len(evidence) + pad]
    return any(w in window for w in words)


def _first_unnegated(
    text: str, words: tuple[str, ...], rules: Rules, not_after: tuple[str, ...] = ()
) -> str | None:
    """The first of words present, not negated and not preceded in its clause by not_after."""
    stops = rules.negation.stops
    for w in words:
        pos = text.find(w)
        while pos >= 0:
            lo = pos
            while lo > 0 and text[lo - 1] not in stops:
                lo -= 1
            before = text[lo:pos]
            if not is_negated(text, pos, pos + len(w), rules) and not any(
                c in before for c in not_after
            ):
                return w
            pos = text.find(w, pos + 1)
    return None
