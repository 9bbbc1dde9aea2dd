"""The triage rules file: its model, loading with clear errors, and a reloadable store."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from services.triage.grammar import DangerGrammar, OrdinaryUse
from services.triage.learned import DangerModel, load_danger_model
from services.triage.lexicons import Lexicon, TypeLexicon, Vulnerable, VulnerableGroup
from services.triage.normalise import Normaliser, NormaliseSpec, Segmenter
from services.triage.numbers import NumberWords
from services.triage.prefilter import first_chars

DEFAULT_RULES_PATH = Path(__file__).parent / "rules" / "rules.yaml"

Severity = Literal["low", "medium", "high", "critical"]
Channel = Literal["police", "court", "labour", "medical", "people"]
Tier = Literal["grid", "town", "county"]
DisputeType = Literal[
    "marriage_family",
    "neighbour",
    "labour",
    "medical",
    "debt_contract",
    "property_mgmt",
    "land",
    "traffic",
    "consumer",
    "public_order",
    "other",
]
SEVERITY_ORDER: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
CHANNELS: tuple[Channel, ...] = ("police", "court", "labour", "medical", "people")


class RulesError(ValueError):
    """The rules file is missing, unreadable or invalid; the message names the bad key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Model):
    money_medium_yuan: int = Field(gt=0)
    money_court_yuan: int = Field(gt=0)
    people_high: int = Field(gt=0)
    people_critical_gathering: int = Field(gt=0)
    repeat_medium: int = Field(ge=2)
    repeat_high: int = Field(ge=2)
    elderly_age: int = Field(gt=0)
    minor_age: int = Field(gt=0)
    vague_digit: int = Field(ge=1, le=9)
    min_type_score: float = Field(ge=0)
    underlying_min_score: float = Field(ge=0, default=5)


class Negation(_Model):
    cues: tuple[str, ...]
    non_negating: tuple[str, ...] = ()
    window: int = Field(ge=0, le=30)
    stops: str
    scope_breakers: tuple[str, ...] = ()
    # "没有人…", "无人…": a cue with its own subject negates the trigger anywhere in its clause
    clause_cues: tuple[str, ...] = ()


class NumbersSpec(_Model):
    """Chinese number words: digits, units and approximate prefixes ("上百" = 100)."""

    digits: dict[str, int] = Field(min_length=1)
    small_units: dict[str, int] = Field(min_length=1)
    big_units: dict[str, int] = Field(min_length=1)
    approx_prefixes: dict[str, int] = {}
    vague_digits: str = "几数"


class CharMap(_Model):
    """Traditional characters and their simplified forms, written as pairs: "車车 見见 …"."""

    pairs: str

    @model_validator(mode="after")
    def _well_formed(self) -> CharMap:
        bad = [p for p in self.pairs.split() if len(p) != 2]
        if bad:
            raise ValueError(f"pairs must be two characters each (traditional, simplified): {bad}")
        return self

    def table(self) -> dict[int, int]:
        """A str.translate table from each traditional character to its simplified form."""
        return {ord(p[0]): ord(p[1]) for p in self.pairs.split()}


class FactorSpec(_Model):
    """A severity factor found by regular expressions in the report text."""

    factor: str
    level: Severity
    patterns: tuple[str, ...] = Field(min_length=1)
    negatable: bool = True
    not_for_types: tuple[DisputeType, ...] = ()
    not_if_clause_has: tuple[str, ...] = ()
    requires_nearby: tuple[str, ...] = ()
    not_nearby: tuple[str, ...] = ()
    nearby_window: int = Field(default=12, ge=0, le=60)
    # the sentence (commas included) must not say the danger is past or settled
    not_if_sentence_has: tuple[str, ...] = ()
    # each group: at least one of its words somewhere in the text
    requires_in_text: tuple[tuple[str, ...], ...] = ()
    # the matched object is the goods in dispute when one of these is in its sentence
    goods_context: tuple[str, ...] = ()
    # …unless the sentence threatens or points with it (指着、扬言、喝下去…)
    goods_unless: tuple[str, ...] = ()
    # which grammar element produced the spec (empty for hand-written factors)
    element: str = ""
    _regex: re.Pattern[str] = PrivateAttr()

    @model_validator(mode="after")
    def _compile(self) -> FactorSpec:
        for i, pattern in enumerate(self.patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"patterns[{i}] is not a valid regex: {exc}") from exc
        self._regex = re.compile("|".join(f"(?:{p})" for p in self.patterns))
        return self

    @property
    def regex(self) -> re.Pattern[str]:
        """All patterns compiled into one alternation."""
        return self._regex


class ReviewPolicy(_Model):
    """When a decision is marked for a coordinator's review (when in doubt, say so)."""

    # the runner-up type is this close to the winner (share of its score) …
    type_split_ratio: float = Field(default=0.85, gt=0, le=1)
    # … and at least this strong
    type_split_min: float = Field(default=4, ge=0)
    # minutes the county centre has to confirm or correct
    confirm_minutes: int = Field(default=15, gt=0)


class TypeSpec(Lexicon):
    """Lexicon of one dispute type, with its channel.

    `requires_any`: the type scores nothing unless one of these substrings is in the text
    (a vehicle named without any collision is not a traffic case); `requires_also`: and one of
    these as well (a collision with no vehicle, a child knocked down at school, is not traffic).
    """

    label: str
    channel: Channel
    negatable: bool = False
    requires_any: tuple[str, ...] = ()
    requires_also: tuple[str, ...] = ()


class Categories(_Model):
    weight: float = Field(ge=0)
    map: dict[str, DisputeType]


class AnyOf(_Model):
    min_amount_yuan: int | None = None
    company_party: bool | None = None


class RouteWhen(_Model):
    severity: tuple[Severity, ...] | None = None
    dispute_type: tuple[DisputeType, ...] | None = None
    source: tuple[str, ...] | None = None
    any_of: AnyOf | None = None


class RouteRule(_Model):
    id: str
    description: str
    when: RouteWhen
    channel: Channel
    co_channel_from_type: bool = False


class Deadlines(_Model):
    sign_for_minutes: dict[Severity, int]
    mediation_days: dict[Channel, int]

    @model_validator(mode="after")
    def _complete(self) -> Deadlines:
        missing = [s for s in SEVERITIES if s not in self.sign_for_minutes]
        if missing:
            raise ValueError(f"sign_for_minutes lacks {missing}")
        missing_c = [c for c in CHANNELS if c not in self.mediation_days]
        if missing_c:
            raise ValueError(f"mediation_days lacks {missing_c}")
        return self


@dataclass(frozen=True)
class CompiledFactor:
    """A FactorSpec as plain attributes (reading a pydantic private attribute is slow)."""

    factor: str
    level: str
    regex: re.Pattern[str]
    negatable: bool
    not_for_types: frozenset[str]
    not_if_clause_has: tuple[str, ...]
    requires_nearby: tuple[str, ...]
    not_nearby: tuple[str, ...]
    nearby_window: int
    not_if_sentence_has: tuple[str, ...]
    requires_in_text: tuple[tuple[str, ...], ...]
    element: str
    goods_context: tuple[str, ...] = ()
    goods_unless: tuple[str, ...] = ()
    # the characters a match can start with (prefilter.first_chars; None: any)
    starts: frozenset[str] | None = None

    @classmethod
    def of(cls, spec: FactorSpec) -> CompiledFactor:
        """The plain view of a spec."""
        return cls(
            spec.factor,
            spec.level,
            spec.regex,
            spec.negatable,
            frozenset(spec.not_for_types),
            spec.not_if_clause_has,
            spec.requires_nearby,
            spec.not_nearby,
            spec.nearby_window,
            spec.not_if_sentence_has,
            spec.requires_in_text,
            spec.element,
            spec.goods_context,
            spec.goods_unless,
            first_chars(spec.regex.pattern),
        )


@dataclass(frozen=True)
class Compiled:
    """Plain-Python views of the rules, so deciding does not go through pydantic attributes."""

    term_index: dict[str, list[tuple[str, tuple[tuple[str, float], ...]]]]
    # term_index split for the hot path: terms of two or more characters by their first two
    # (longest first, as in term_index), and the one-character terms
    terms_by_pair: dict[str, tuple[tuple[str, tuple[tuple[str, float], ...]], ...]]
    single_char_terms: dict[str, tuple[str, tuple[tuple[str, float], ...]]]
    priority: dict[str, int]
    types: tuple[TypeLexicon, ...]
    factors: tuple[CompiledFactor, ...]
    repeat_phrases: tuple[tuple[re.Pattern[str], int], ...]
    numbers: NumberWords
    company_types: frozenset[str]  # dispute types whose routing asks about a company party
    simplify: dict[int, int]  # str.translate table: traditional → simplified characters
    hyperbole: re.Pattern[str] | None  # a danger match inside one of these is dropped
    weapon_noun: re.Pattern[str] | None  # weapon nouns: seen without a weapon factor, a cue
    ordinary_use: OrdinaryUse | None  # danger objects beside their ordinary use (加油站, 打虫)
    denied_danger: re.Pattern[str] | None  # the report says no danger was seen (未发现过激行为)
    normalise: Normaliser  # full-width, traditional, dialect, homophones, pinyin initials
    segmenter: Segmenter  # word boundaries (jieba, built on first use)
    vulnerable_groups: tuple[VulnerableGroup, ...]  # elderly, disabled, pregnant, minor


class Rules(_Model):
    """Everything the triage engine decides with, loaded from rules.yaml."""

    version: str = Field(min_length=1)
    thresholds: Thresholds
    numbers: NumbersSpec
    negation: Negation
    company_markers: tuple[str, ...]
    company_not: tuple[str, ...] = ()
    report_words: tuple[str, ...]
    repeat_phrases: dict[str, int] = {}
    # "这个月第三回": an ordinal after one of these counts as a report count without a report word
    repeat_periods: tuple[str, ...] = ()
    # reports written in traditional characters are read in simplified form
    traditional: CharMap | None = None
    # dialect words, voice-to-text homophones, pinyin initials, context rewrites (normalise.py)
    normalise: NormaliseSpec | None = None
    wage_words: tuple[str, ...]
    gathering_words: tuple[str, ...]
    gathering_future: tuple[str, ...] = ()
    people_not: tuple[str, ...] = ()
    # what a crowd does, read in the sentence of its head count (对峙, 围着, 来了…)
    crowd_verbs: tuple[str, ...] = ()
    crowd_words: dict[str, int] = {}
    vulnerable: Vulnerable
    severity_factors: tuple[FactorSpec, ...]
    # who × intent × harm act, preparations, weapons × handling, aspect, protest (grammar.py)
    danger_grammar: DangerGrammar | None = None
    review: ReviewPolicy = ReviewPolicy()
    dispute_types: dict[DisputeType, TypeSpec]
    # subjects outside the ten types (benefits, missing people, funerals…): they score for `other`
    other_anchors: Lexicon | None = None
    categories: Categories
    type_priority: tuple[DisputeType, ...]
    surface_type: DisputeType | None = None
    # a report with no dispute subject whose danger is one of these factors is the surface type:
    # a fight or a blade drawn with nothing underneath it (DOMAIN §3 public_order)
    surface_factors: tuple[str, ...] = ()
    surface_not: tuple[str, ...] = ()
    routing: tuple[RouteRule, ...] = Field(min_length=1)
    fallback_channels: list[Channel] = Field(min_length=1)
    fallback_rule_id: str = "R8-fallback"
    manual_rule_id: str
    manual_after_returns: int = Field(ge=1)
    manual_tier: Tier
    tiers: dict[Severity, Tier]
    deadlines: Deadlines
    # the learned second reader of danger (learned.py), a file beside the rules file
    danger_model: str | None = None
    _compiled: Compiled = PrivateAttr()
    _danger: DangerModel | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> Rules:
        ids = [r.id for r in self.routing]
        if len(ids) != len(set(ids)):
            raise ValueError(f"routing: duplicate rule ids in {ids}")
        missing = [s for s in SEVERITIES if s not in self.tiers]
        if missing:
            raise ValueError(f"tiers lacks {missing}")
        for phrase in self.repeat_phrases:
            try:
                re.compile(phrase)
            except re.error as exc:
                raise ValueError(f"repeat_phrases: {phrase!r} is not a valid regex: {exc}") from exc
        if "other" in self.dispute_types:
            raise ValueError("dispute_types: 'other' is the fallback and takes no lexicon")
        index: dict[str, list[tuple[str, tuple[tuple[str, float], ...]]]] = {}
        by_term: dict[str, list[tuple[str, float]]] = {}
        lexicons: list[tuple[str, Lexicon]] = list(self.dispute_types.items())
        if self.other_anchors is not None:
            lexicons.append(("other", self.other_anchors))
        for code, lex in lexicons:
            for term, weight in lex.plain_terms:
                by_term.setdefault(term, []).append((code, weight))
        simplify = self.traditional.table() if self.traditional else {}
        grammar = self.danger_grammar
        grammar_specs: tuple[FactorSpec, ...] = ()
        if grammar is not None:
            try:
                grammar_specs = tuple(FactorSpec.model_validate(d) for d in grammar.factor_specs())
            except ValidationError as exc:
                raise ValueError(f"danger_grammar: {_format_validation(exc)}") from exc
        for term in sorted(by_term, key=len, reverse=True):
            index.setdefault(term[0], []).append((term, tuple(by_term[term])))
        by_pair: dict[str, list[tuple[str, tuple[tuple[str, float], ...]]]] = {}
        single: dict[str, tuple[str, tuple[tuple[str, float], ...]]] = {}
        for entries in index.values():
            for entry in entries:
                if len(entry[0]) >= 2:
                    by_pair.setdefault(entry[0][:2], []).append(entry)
                else:
                    single[entry[0]] = entry
        self._compiled = Compiled(
            term_index=index,
            terms_by_pair={pair: tuple(entries) for pair, entries in by_pair.items()},
            single_char_terms=single,
            priority={code: i for i, code in enumerate(self.type_priority)},
            types=tuple(
                TypeLexicon(
                    code,
                    lex.negatable if isinstance(lex, TypeSpec) else False,
                    lex.pattern_terms,
                    lex.requires_any if isinstance(lex, TypeSpec) else (),
                    lex.requires_also if isinstance(lex, TypeSpec) else (),
                )
                for code, lex in lexicons
            ),
            factors=tuple(CompiledFactor.of(f) for f in self.severity_factors + grammar_specs),
            hyperbole=grammar.hyperbole_regex() if grammar else None,
            weapon_noun=grammar.weapon_noun_regex() if grammar else None,
            ordinary_use=grammar.ordinary_use() if grammar else None,
            denied_danger=re.compile(grammar.no_danger_regex())
            if grammar and (grammar.denied_danger or grammar.danger_over)
            else None,
            repeat_phrases=tuple((re.compile(p), n) for p, n in self.repeat_phrases.items()),
            numbers=NumberWords(
                digits=dict(self.numbers.digits),
                small_units=dict(self.numbers.small_units),
                big_units=dict(self.numbers.big_units),
                prefixes=dict(self.numbers.approx_prefixes),
                vague=self.numbers.vague_digits,
                vague_digit=self.thresholds.vague_digit,
            ),
            company_types=frozenset(
                code
                for r in self.routing
                if r.when.any_of is not None and r.when.any_of.company_party
                for code in (r.when.dispute_type or tuple(self.dispute_types))
            ),
            simplify=simplify,
            normalise=Normaliser.build(self.normalise, simplify),
            segmenter=Segmenter(tuple(by_term)),
            vulnerable_groups=self.vulnerable.groups(),
        )
        return self

    @property
    def danger(self) -> DangerModel | None:
        """The learned danger reader named by `danger_model`, once loaded."""
        return self._danger

    def attach_danger_model(self, model: DangerModel | None) -> None:
        """Use this learned danger reader with these rules."""
        self._danger = model

    @cached_property
    def compiled(self) -> Compiled:
        """Lookup structures built once at load time for the hot path.

        Cached in the instance dict: a pydantic private attribute costs a __getattr__ call on
        every read, and deciding reads this dozens of times.
        """
        return self._compiled


def _format_validation(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{where}: {err['msg']}")
    return "; ".join(lines)


def parse_rules(data: Any, origin: str = "<rules>") -> Rules:
    """Validate already-parsed YAML content into Rules, or raise RulesError."""
    if not isinstance(data, dict):
        raise RulesError(f"{origin}: top level must be a mapping, got {type(data).__name__}")
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        raise RulesError(f"{origin}: invalid rules: {_format_validation(exc)}") from exc


def load_rules(path: Path | None = None) -> Rules:
    """Load and validate the rules file (default: the packaged rules.yaml)."""
    path = path or DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read rules file: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: invalid YAML: {exc}") from exc
    rules = parse_rules(data, str(path))
    if rules.danger_model:
        # beside the rules file; an operator's own rules file may use the packaged model
        model_path = path.parent / rules.danger_model
        if not model_path.exists():
            model_path = DEFAULT_RULES_PATH.parent / rules.danger_model
        try:
            rules.attach_danger_model(load_danger_model(model_path))
        except (OSError, ValueError) as exc:
            raise RulesError(f"{model_path}: cannot load the danger model: {exc}") from exc
    return rules


class RulesStore:
    """Holds the current Rules; reload() swaps in a new file's rules, keeping the old on error."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path or DEFAULT_RULES_PATH
        self._lock = threading.Lock()
        self._rules = load_rules(self._path)
        self._mtime = self._stat()

    def _stat(self) -> float:
        try:
            return self._path.stat().st_mtime
        except OSError:
            return 0.0

    @property
    def current(self) -> Rules:
        """The rules in force now."""
        return self._rules

    @property
    def version(self) -> str:
        """Version string of the rules in force."""
        return self._rules.version

    def reload(self) -> Rules:
        """Re-read the file; on RulesError the previous rules stay in force and it is raised."""
        rules = load_rules(self._path)
        with self._lock:
            self._rules = rules
            self._mtime = self._stat()
        return rules

    def reload_if_changed(self) -> bool:
        """Reload when the file's modification time changed; True when new rules were loaded."""
        if self._stat() == self._mtime:
            return False
        self.reload()
        return True
