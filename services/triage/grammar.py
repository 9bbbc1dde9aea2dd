"""Danger detection as a small grammar: each element is data in rules.yaml (`danger_grammar:`).

The elements combine into severity factors (the same FactorSpec the hand-written factors use,
so negation, clause filters and the rest apply to them alike):

- threat:      intent marker (要、扬言、否则…) · up to `window` characters · harm act
               condition (再不…、不给…) · consequence (就…) · harm act
               standalone threats ("大家都别好过")
- preparation: an object (遗书、汽油、打火机) said to be ready (写好、买好、在手)
- weapon:      handling verb (拿着、拎着、挥着…) · weapon noun; chasing with one (追着砍)
- ongoing:     progressive aspect (正在、还在…) · violent verb, or a completed-now form
               ("打起来了") in a sentence that says nothing of the past or of it being settled
- protest:     a body carried or placed somewhere to press a claim
- hit_and_run: a driver trying to leave while people gather, after a collision with injury

Who is involved (first person, the other party, a relative) is read for the review cues and
the evidence; the act and its marker decide. Hyperbole ("气死了", "打死我也不签") is a list of
patterns: a danger match inside one is dropped and reported as a review cue instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

STOP_CLASS = "[^，。；！？,;!?\\s]"  # one character inside a clause
SENTENCE_CLASS = "[^。；！？;!?\\n]"  # one character inside a sentence (commas allowed)


def _alt(words: tuple[str, ...] | list[str]) -> str:
    """Plain words as one non-capturing alternation, longest first."""
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


def _re_alt(patterns: tuple[str, ...] | list[str]) -> str:
    """Regular expressions as one non-capturing alternation."""
    return "(?:" + "|".join(f"(?:{p})" for p in patterns) + ")"


@lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True)
class OrdinaryUse:
    """Danger objects (汽油, 农药, 刀…) each said beside their ordinary use (加油站, 打虫, 质量…).

    The learned reader weighs the object's name; the grammar knows its harmless senses. When every
    danger object of a report sits beside its ordinary use and nothing threatens with it, the
    model's confidence rests on the name alone: triage only asks for review.
    """

    objects: re.Pattern[str]
    ordinary: re.Pattern[str]
    threatening: re.Pattern[str]
    window: int

    def all_ordinary(self, text: str) -> str | None:
        """The ordinary-use word when every danger object is beside one (None otherwise)."""
        shown = None
        for m in self.objects.finditer(text):
            near = text[max(0, m.start() - self.window) : m.end() + self.window]
            use = self.ordinary.search(near)
            if use is None or self.threatening.search(near):
                return None
            shown = shown or use.group(0)
        return shown


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Who(_Model):
    """Who speaks or acts: the first person, the other party, a relative."""

    first_person: tuple[str, ...]
    other_party: tuple[str, ...]
    relative: tuple[str, ...]


class Threats(_Model):
    """Intent or condition markers × harm acts (each act a regular expression)."""

    window: int = Field(ge=0, le=30)
    strong_intent: tuple[str, ...]  # a threat whenever an act follows
    weak_intent: tuple[str, ...]  # 就、会…: only when the sentence is not about the past
    conditions: tuple[str, ...]  # 再不…、不给… (then a consequence marker)
    consequence: tuple[str, ...]
    harm_acts: dict[str, str] = Field(min_length=1)
    standalone: tuple[str, ...] = ()
    # a veiled threat (搞出点大事来, 后果自负) is critical when the text commits to it
    # (说到做到, 不是吓唬): regular expressions, and the plain words of commitment
    veiled: tuple[str, ...] = ()
    commitment: tuple[str, ...] = ()


class Preparations(_Model):
    """An object of harm said to be ready: 遗书写好了, 汽油买好了, 打火机在手."""

    objects: tuple[str, ...]
    ready: tuple[str, ...]
    ready_before: tuple[str, ...]  # the state first: 写好了遗书, 买好了汽油
    goods_context: tuple[str, ...] = ()  # the object is merchandise in dispute
    goods_unless: tuple[str, ...] = ()  # …unless the sentence threatens with it


class Means(_Model):
    """Poison, a corrosive or petrol got hold of, stockpiled, carried or sought (DOMAIN §3).

    Buying 硫酸 or 百草枯 is no danger by itself (买农药打虫); it is when the text aims it at a
    person (泼, 毁容, 见不得人) or says farewell around it (要是我走了, 存折交给…, 孩子就拜托你了),
    and not when its ordinary use is said beside it (打虫, 除草, 医生开的, 加油站).
    """

    substances: tuple[str, ...]
    acquired: tuple[str, ...]  # the verb first: 买了硫酸, 攒安眠药
    kept: tuple[str, ...]  # the substance first: 安眠药我攒了好几个月, 百草枯就在包里放着
    sought: tuple[str, ...] = ()  # regular expressions before the substance: 打听哪里能买到
    aimed: tuple[str, ...]  # near it: aimed at a person
    farewell: tuple[str, ...]  # anywhere in the text: a quiet goodbye
    ordinary_use: tuple[str, ...]  # near it: what it is ordinarily for
    window: int = Field(default=24, ge=0, le=60)
    # beside a danger object (within `everyday_window`): it is in everyday use, and the learned
    # reader, which weighs the object's name, may only queue the report for review
    everyday: tuple[str, ...] = ()
    everyday_window: int = Field(default=8, ge=0, le=30)


class Farewell(_Model):
    """A goodbye posted or sent (朋友圈, 留言) by someone who can no longer be reached.

    The words (这辈子就这样吧, 对不起家里人) or a picture of a high or deep place (天台的照片,
    配图是一座桥) count only with both a message and an unreachable sender in the text.
    """

    phrases: tuple[str, ...]  # regular expressions
    places: tuple[str, ...]  # regular expressions: a picture or location of a place to die
    message: tuple[str, ...]  # 朋友圈, 发了, 留言…
    unreachable: tuple[str, ...]  # 关机, 不接, 联系不上…


class Weapons(_Model):
    """Weapon nouns × handling verbs; work tools need a fight nearby; chasing with a blade."""

    arms: tuple[str, ...]
    tools: tuple[str, ...]
    handling: tuple[str, ...]
    chase: tuple[str, ...]  # regular expressions
    fight_nearby: tuple[str, ...]
    work_nearby: tuple[str, ...]
    goods_context: tuple[str, ...]
    goods_unless: tuple[str, ...] = ()
    thing_targets: tuple[str, ...] = ()  # regular expressions: what a tool is swung at
    arms_thing_targets: tuple[str, ...] = ()  # what a blade is taken to (a tree, a crop)


class Aspect(_Model):
    """Violence going on now: aspect markers, violent verbs, completed-now forms."""

    progressive: tuple[str, ...]  # a few characters may sit between marker and verb
    progressive_adjacent: tuple[str, ...]  # 正、在: only right before the verb
    violent_verbs: tuple[str, ...]  # regular expressions
    completed_now: tuple[str, ...]  # regular expressions
    urgent: tuple[str, ...] = ()  # a call for help after the violence, in its sentence
    passive: tuple[str, ...] = ()  # 被…打: the marker, the passive, the agent, the verb
    past: tuple[str, ...]
    long_ago: tuple[str, ...] = ()
    settled: tuple[str, ...]
    # words that bring a past or settled danger back to now ("已调解，但今天又…")
    now: tuple[str, ...] = ()
    # a settled word denied is a commitment: 这不是开玩笑, 我不是吓唬你们
    denied: tuple[str, ...] = ()
    # a past word that dates the claim, not the danger: 不结清去年工资就跳下来
    dated_claim: str = ""
    # violence, then people hiding from it or the attacker still inside: it is going on
    hiding: tuple[str, ...] = ()
    # the sentence says no blow was struck (干起来了，光动嘴没动手): a fight word in it is a row
    no_blows: tuple[str, ...] = ()


class Protest(_Model):
    """A body used to press a claim: moved or placed at a door, office, site or hospital."""

    acts: tuple[str, ...]  # regular expressions complete in themselves (抬棺)
    moved_to_place: tuple[str, ...]  # regular expressions needing a death in the text
    death_words: tuple[str, ...]
    kept_unburied: tuple[str, ...] = ()  # regular expressions: needing a death and a claim
    claim_words: tuple[str, ...] = ()


class HitAndRun(_Model):
    """A driver trying to leave an injury collision while a crowd gathers."""

    leaving: tuple[str, ...]  # regular expressions
    crowd_nearby: tuple[str, ...]
    collision: tuple[str, ...]
    injury: tuple[str, ...]


class DangerGrammar(_Model):
    """The `danger_grammar:` section: the elements and the hyperbole that cancels them."""

    who: Who
    threats: Threats
    preparations: Preparations
    means: Means | None = None
    farewell: Farewell | None = None
    weapons: Weapons
    aspect: Aspect
    protest: Protest
    hit_and_run: HitAndRun
    hyperbole: tuple[str, ...] = ()  # regular expressions
    # the report says in so many words that no danger was seen (暂无过激行为, 未发现其动手):
    # the learned reader may only queue it for review (no labelled critical report says so)
    denied_danger: str = ""
    # the report says the danger is over: the attacker gone, no blow struck, the parties gone
    # home (打人的已经跑了, 没有打 就是吵, 两家各自回屋): the learned reader only queues it for
    # review; regular expressions
    danger_over: tuple[str, ...] = ()

    def no_danger_regex(self) -> str:
        """denied_danger and danger_over as one alternation ("" if neither)."""
        parts = [p for p in (self.denied_danger, *self.danger_over) if p]
        return _re_alt(parts) if parts else ""

    @model_validator(mode="after")
    def _valid(self) -> DangerGrammar:
        for name, pattern in self.regexes():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{name}: {pattern!r} is not a valid regex: {exc}") from exc
        return self

    def regexes(self) -> list[tuple[str, str]]:
        """Every regular expression of the grammar, named by its element."""
        out = [(f"threats.harm_acts.{k}", v) for k, v in self.threats.harm_acts.items()]
        out += [("threats.standalone", p) for p in self.threats.standalone]
        out += [("weapons.chase", p) for p in self.weapons.chase]
        out += [("aspect.violent_verbs", p) for p in self.aspect.violent_verbs]
        out += [("aspect.completed_now", p) for p in self.aspect.completed_now]
        out += [("protest.acts", p) for p in self.protest.acts]
        out += [("protest.moved_to_place", p) for p in self.protest.moved_to_place]
        out += [("protest.kept_unburied", p) for p in self.protest.kept_unburied]
        out += [("hit_and_run.leaving", p) for p in self.hit_and_run.leaving]
        out += [("hyperbole", p) for p in self.hyperbole]
        out += [("threats.veiled", p) for p in self.threats.veiled]
        if self.denied_danger:
            out.append(("denied_danger", self.denied_danger))
        out += [("danger_over", p) for p in self.danger_over]
        if self.aspect.dated_claim:
            out.append(("aspect.dated_claim", self.aspect.dated_claim))
        if self.farewell is not None:
            out += [("farewell.phrases", p) for p in self.farewell.phrases]
            out += [("farewell.places", p) for p in self.farewell.places]
        if self.means is not None:
            out += [("means.sought", p) for p in self.means.sought]
        return out

    def harm_act(self) -> str:
        """Every harm act as one alternation."""
        return _re_alt(list(self.threats.harm_acts.values()))

    def factor_specs(self) -> list[dict[str, Any]]:
        """The grammar as severity-factor specs (validated by the rules' FactorSpec)."""
        t, p, w, a = self.threats, self.preparations, self.weapons, self.aspect
        act = self.harm_act()
        gap = f"{STOP_CLASS}{{0,{t.window}}}?"
        past = list(a.past) + list(a.long_ago)
        # a blade taken to a tree or a crop is no weapon against a person
        arms_aimed = (
            f"(?!{STOP_CLASS}{{0,8}}{_re_alt(w.arms_thing_targets)})"
            if w.arms_thing_targets
            else ""
        )
        markers = _alt(list(a.progressive) + list(a.progressive_adjacent))
        passive = (
            [f"{markers}{_alt(a.passive)}{STOP_CLASS}{{0,8}}?{_re_alt(a.violent_verbs)}"]
            if a.passive
            else []
        )
        specs: list[dict[str, Any]] = [
            {
                "factor": "extreme_threat",
                "level": "critical",
                "element": "threats.strong_intent",
                "patterns": [f"{_alt(t.strong_intent)}{gap}{act}"],
                "not_if_sentence_has": list(a.long_ago) + list(a.settled),
            },
            {
                "factor": "extreme_threat",
                "level": "critical",
                "element": "threats.weak_intent",
                "patterns": [f"{_alt(t.weak_intent)}{gap}{act}"],
                "not_if_sentence_has": past + list(a.settled),
            },
            {
                "factor": "extreme_threat",
                "level": "critical",
                "element": "threats.conditions",
                "patterns": [
                    f"{_alt(t.conditions)}{SENTENCE_CLASS}{{0,16}}?{_alt(t.consequence)}{gap}{act}"
                ],
            },
            {
                "factor": "preparation",
                "level": "critical",
                "element": "preparations",
                "patterns": [
                    f"{_alt(p.objects)}{STOP_CLASS}{{0,6}}?{_alt(p.ready)}",
                    f"{_alt(p.ready_before)}{STOP_CLASS}{{0,3}}?{_alt(p.objects)}",
                ],
                "goods_context": list(p.goods_context),
                "goods_unless": list(p.goods_unless),
            },
            {
                "factor": "weapon",
                "level": "critical",
                "element": "weapons.arms",
                "patterns": [
                    f"{_alt(w.handling)}{STOP_CLASS}{{0,5}}?{_alt(w.arms)}{arms_aimed}",
                    *w.chase,
                ],
                "goods_context": list(w.goods_context),
                "goods_unless": list(w.goods_unless),
            },
            {
                "factor": "weapon",
                "level": "critical",
                "element": "weapons.tools",
                "patterns": [
                    f"{_alt(w.handling)}{STOP_CLASS}{{0,5}}?{_alt(w.tools)}"
                    + (
                        f"(?!{STOP_CLASS}{{0,10}}{_re_alt(w.thing_targets)})"
                        if w.thing_targets
                        else ""
                    )
                ],
                "goods_context": list(w.goods_context),
                "goods_unless": list(w.goods_unless),
                "requires_nearby": list(w.fight_nearby),
                "not_nearby": list(w.work_nearby),
                "nearby_window": 16,
            },
            {
                "factor": "ongoing_violence",
                "level": "critical",
                "element": "aspect.progressive",
                "patterns": [
                    # the marker may open a sentence whose next clause names the blow:
                    # 还在屋里闹，摔东西，打老婆
                    f"{_alt(a.progressive)}{SENTENCE_CLASS}{{0,12}}?{_re_alt(a.violent_verbs)}",
                    f"{_alt(a.progressive_adjacent)}{_re_alt(a.violent_verbs)}",
                    *passive,
                ],
                "not_if_sentence_has": past + list(a.settled) + list(a.no_blows),
            },
            {
                "factor": "ongoing_violence",
                "level": "critical",
                "element": "aspect.completed_now",
                "patterns": list(a.completed_now),
                "not_if_sentence_has": past + list(a.settled) + list(a.no_blows),
            },
            *(
                [
                    {
                        "factor": "ongoing_violence",
                        "level": "critical",
                        "element": "aspect.urgent",
                        "patterns": [
                            f"{_re_alt(a.violent_verbs)}{SENTENCE_CLASS}{{0,20}}?{_alt(a.urgent)}"
                        ],
                        "not_if_sentence_has": past + list(a.settled) + list(a.no_blows),
                    }
                ]
                if a.urgent
                else []
            ),
            {
                "factor": "body_pressure",
                "level": "critical",
                "element": "protest",
                "patterns": list(self.protest.acts),
            },
            {
                "factor": "body_pressure",
                "level": "critical",
                "element": "protest.moved_to_place",
                "patterns": list(self.protest.moved_to_place),
                "requires_in_text": [list(self.protest.death_words)],
            },
            *(
                [
                    {
                        "factor": "body_pressure",
                        "level": "critical",
                        "element": "protest.kept_unburied",
                        "patterns": list(self.protest.kept_unburied),
                        "requires_in_text": [
                            list(self.protest.death_words),
                            list(self.protest.claim_words),
                        ],
                    }
                ]
                if self.protest.kept_unburied
                else []
            ),
            {
                "factor": "hit_and_run",
                "level": "critical",
                "element": "hit_and_run",
                "patterns": list(self.hit_and_run.leaving),
                "requires_nearby": list(self.hit_and_run.crowd_nearby),
                "nearby_window": 30,
                "requires_in_text": [
                    list(self.hit_and_run.collision),
                    list(self.hit_and_run.injury),
                ],
            },
        ]
        if a.hiding:
            specs.append(
                {
                    "factor": "ongoing_violence",
                    "level": "critical",
                    "element": "aspect.hiding",
                    "patterns": [
                        f"{_re_alt(a.violent_verbs)}{SENTENCE_CLASS}{{0,30}}?{_alt(a.hiding)}"
                    ],
                    "not_if_sentence_has": past + list(a.settled),
                }
            )
        if t.veiled and t.commitment:
            specs.append(
                {
                    "factor": "extreme_threat",
                    "level": "critical",
                    "element": "threats.veiled",
                    "patterns": list(t.veiled),
                    "requires_in_text": [list(t.commitment)],
                    "not_if_sentence_has": list(a.long_ago) + list(a.settled),
                }
            )
        if self.farewell is not None:
            f = self.farewell
            specs.append(
                {
                    "factor": "extreme_threat",
                    "level": "critical",
                    "element": "farewell",
                    "patterns": list(f.phrases) + list(f.places),
                    "requires_in_text": [list(f.message), list(f.unreachable)],
                }
            )
        if self.means is not None:
            specs += self._means_specs(list(p.goods_context))
        if t.standalone:
            specs.append(
                {
                    "factor": "extreme_threat",
                    "level": "critical",
                    "element": "threats.standalone",
                    "patterns": list(t.standalone),
                }
            )
        return specs

    def _means_specs(self, goods: list[str]) -> list[dict[str, Any]]:
        """Means got hold of, aimed at a person nearby or with a farewell in the text."""
        m = self.means
        assert m is not None
        subst = _alt(m.substances)
        patterns = [
            f"{_alt(m.acquired)}{STOP_CLASS}{{0,4}}?{subst}",
            f"{subst}{STOP_CLASS}{{0,6}}?{_alt(m.kept)}",
        ]
        if m.sought:
            patterns.append(f"{_re_alt(m.sought)}{STOP_CLASS}{{0,4}}?{subst}")
        common: dict[str, Any] = {
            "factor": "preparation",
            "level": "critical",
            "patterns": patterns,
            "goods_context": goods,
            "not_nearby": list(m.ordinary_use),
            "nearby_window": m.window,
        }
        return [
            {**common, "element": "means.aimed", "requires_nearby": list(m.aimed)},
            {**common, "element": "means.farewell", "requires_in_text": [list(m.farewell)]},
        ]

    def ordinary_use(self) -> OrdinaryUse | None:
        """Danger objects beside their ordinary use (None without a `means:` element)."""
        m, p, w = self.means, self.preparations, self.weapons
        if m is None or not m.everyday:
            return None
        objects = set(m.substances) | set(p.objects) | set(w.arms)
        return OrdinaryUse(
            objects=re.compile(_alt(sorted(objects))),
            ordinary=re.compile(_alt(m.everyday)),
            threatening=re.compile(_alt(sorted(set(p.goods_unless) | set(m.aimed)))),
            window=m.everyday_window,
        )

    def compiled_dated_claim(self) -> re.Pattern[str] | None:
        """`aspect.dated_claim` compiled (cached by pattern), None when unset."""
        return _compiled(self.aspect.dated_claim) if self.aspect.dated_claim else None

    def hyperbole_regex(self) -> re.Pattern[str] | None:
        """All hyperbole patterns as one regex (None when the list is empty)."""
        return re.compile(_re_alt(list(self.hyperbole))) if self.hyperbole else None

    def weapon_noun_regex(self) -> re.Pattern[str]:
        """Any weapon noun (arms only): seen without handling it is a review cue."""
        return re.compile(_alt(self.weapons.arms))

    def who_of(self, context: str) -> str | None:
        """Who the words are about: first_person, relative or other_party (None if unsaid)."""
        for role in ("relative", "first_person", "other_party"):
            if any(word in context for word in getattr(self.who, role)):
                return role
        return None
