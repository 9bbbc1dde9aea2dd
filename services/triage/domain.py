"""Pure triage rules: a report in, a dispute type, severity, channel, tier and deadlines out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.triage.rules import RouteRule, Rules
from services.triage.signals import Factor, Signals, TypeChoice, extract


@dataclass(frozen=True)
class Party:
    """A party to the dispute; the name may be a person or a company."""

    name: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class TriageInput:
    """What triage needs from a case."""

    source: str
    text: str
    category: str | None = None
    parties: tuple[Party, ...] = ()
    repeat_count: int = 1
    excluded_channels: frozenset[str] = frozenset()
    return_count: int = 0
    # a coordinator's correction (review queue): it outweighs what the text says
    corrected_type: str | None = None
    corrected_severity: str | None = None


@dataclass(frozen=True)
class Reason:
    """One human-readable reason behind a decision."""

    kind: str
    code: str
    evidence: str


@dataclass(frozen=True)
class SeverityFactor:
    """One aggravating factor and the words that show it."""

    level: str
    factor: str
    evidence: str


@dataclass(frozen=True)
class TriageDecision:
    """The outcome of triage with its reasons and deadlines."""

    dispute_type: str
    severity: str
    channel: str
    co_channels: tuple[str, ...]
    tier: str
    rule_id: str
    factors: tuple[SeverityFactor, ...]
    reasons: tuple[Reason, ...]
    amount_yuan: int | None
    people_count: int | None
    sign_for_due: datetime
    mediation_due: datetime
    rules_version: str
    decided_at: datetime
    sign_for_minutes: int = 0
    mediation_days: int = 0
    # when in doubt, say so: conflicting danger cues or split type evidence
    review: bool = False
    review_cues: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the decision."""
        return {
            "dispute_type": self.dispute_type,
            "severity": self.severity,
            "channel": self.channel,
            "co_channels": list(self.co_channels),
            "tier": self.tier,
            "rule_id": self.rule_id,
            "deadlines": {
                "sign_for_due": self.sign_for_due.isoformat(),
                "mediation_due": self.mediation_due.isoformat(),
                "sign_for_minutes": self.sign_for_minutes,
                "mediation_days": self.mediation_days,
            },
            "reasons": [
                {"kind": r.kind, "code": r.code, "evidence": r.evidence} for r in self.reasons
            ],
            "factors": [
                {"level": f.level, "factor": f.factor, "evidence": f.evidence} for f in self.factors
            ],
            "amount_yuan": self.amount_yuan,
            "people_count": self.people_count,
            "rules_version": self.rules_version,
            "decided_at": self.decided_at.isoformat(),
            "review": self.review,
            "review_cues": list(self.review_cues),
        }


def _rule_matches(rule: RouteRule, inp: TriageInput, sig: Signals, severity: str) -> bool:
    """Whether a routing rule's conditions all hold for this report."""
    when = rule.when
    if when.severity is not None and severity not in when.severity:
        return False
    if when.dispute_type is not None and sig.type_choice.code not in when.dispute_type:
        return False
    if when.source is not None and inp.source not in when.source:
        return False
    if when.any_of is not None:
        any_of = when.any_of
        amount_ok = (
            any_of.min_amount_yuan is not None
            and sig.amount_yuan is not None
            and sig.amount_yuan >= any_of.min_amount_yuan
        )
        company_ok = bool(any_of.company_party) and sig.company_party is not None
        if not (amount_ok or company_ok):
            return False
    return True


def _rule_evidence(rule: RouteRule, inp: TriageInput, sig: Signals) -> str:
    """Why this rule applied, in words."""
    extra = ""
    if rule.when.any_of is not None:
        bits = []
        if sig.amount_yuan is not None:
            bits.append(f"金额{sig.amount_yuan}元")
        if sig.company_party:
            bits.append(f"企业当事人：{sig.company_party}")
        extra = "（" + "，".join(bits) + "）" if bits else ""
    elif rule.when.source is not None:
        extra = f"（来源{inp.source}）"
    return rule.description + extra


def route(
    inp: TriageInput, sig: Signals, severity: str, rules: Rules
) -> tuple[str, str, tuple[str, ...], str]:
    """Apply the routing rules in order, skipping returned channels: (channel, rule_id, co, why)."""
    excluded = inp.excluded_channels
    for rule in rules.routing:
        if rule.channel in excluded or not _rule_matches(rule, inp, sig, severity):
            continue
        co: tuple[str, ...] = ()
        if rule.co_channel_from_type:
            own = _own_channel(inp, sig, severity, rules)
            if own is not None and own != rule.channel and own not in excluded:
                co = (own,)
        return rule.channel, rule.id, co, _rule_evidence(rule, inp, sig)
    # every matching channel returned the case: the first fallback that has not returned it
    # (people's mediation, then court pre-litigation mediation, then the police station)
    left = [c for c in rules.fallback_channels if c not in excluded]
    last = left[0] if left else rules.fallback_channels[0]
    gone = "、".join(sorted(excluded))
    return last, rules.fallback_rule_id, (), f"{gone}已退单，按兜底顺序由{last}承办"


def _own_channel(inp: TriageInput, sig: Signals, severity: str, rules: Rules) -> str | None:
    """The channel the dispute type would get without the severity override."""
    for rule in rules.routing:
        if rule.co_channel_from_type or rule.when.severity is not None:
            continue
        if _rule_matches(rule, inp, sig, severity):
            return rule.channel
    return None


def decide(inp: TriageInput, rules: Rules, decided_at: datetime) -> TriageDecision:
    """Triage one report: type, severity, channel (§4 order), tier and deadlines, with reasons."""
    names = tuple(p.name for p in inp.parties if p.name)
    sig = extract(inp.text, inp.category, names, inp.repeat_count, rules)
    read_danger(sig, rules)
    corrected = _apply_correction(inp, sig)
    severity = inp.corrected_severity or sig.severity
    channel, rule_id, co, why = route(inp, sig, severity, rules)
    tier = rules.tiers[severity]  # type: ignore[index]
    reasons = [
        Reason("type", sig.type_choice.code, sig.type_choice.evidence),
        Reason("severity", severity, _severity_evidence(sig)),
        Reason("channel", rule_id, why),
    ]
    if corrected:
        reasons.append(Reason("correction", "coordinator", corrected))
    if inp.excluded_channels:
        returned = "、".join(sorted(inp.excluded_channels))
        reasons.append(Reason("channel", "returned", f"已退单渠道不再派：{returned}"))
    if inp.return_count >= rules.manual_after_returns:
        tier = rules.manual_tier
        rule_id = rules.manual_rule_id
        reasons.append(Reason("tier", rule_id, f"已退单{inp.return_count}次，交{tier}级人工指派"))
    else:
        reasons.append(Reason("tier", tier, f"严重程度{severity} → {tier}"))
    minutes = rules.deadlines.sign_for_minutes[severity]  # type: ignore[index]
    days = rules.deadlines.mediation_days[channel]  # type: ignore[index]
    reasons.append(
        Reason("deadline", f"{minutes}m/{days}d", f"签收{minutes}分钟内，调解期限{days}天")
    )
    return TriageDecision(
        dispute_type=sig.type_choice.code,
        severity=severity,
        channel=channel,
        co_channels=co,
        tier=tier,
        rule_id=rule_id,
        factors=tuple(SeverityFactor(f.level, f.factor, f.evidence) for f in sig.factors),
        reasons=tuple(reasons),
        amount_yuan=sig.amount_yuan,
        people_count=sig.people_count,
        sign_for_due=decided_at + timedelta(minutes=minutes),
        mediation_due=decided_at + timedelta(days=days),
        rules_version=rules.version,
        decided_at=decided_at,
        sign_for_minutes=minutes,
        mediation_days=days,
        review=bool(sig.review_cues) and not corrected,
        review_cues=() if corrected else tuple(sig.review_cues),
    )


def read_danger(sig: Signals, rules: Rules) -> None:
    """Let the learned reader raise what the grammar left below critical, always for review.

    The model adds a critical factor only when it is confident (its threshold keeps false
    criticals within budget on its training corpus) and a review cue when it is unsure; it
    never lowers a critical read by the grammar.
    """
    model = rules.danger
    if model is None or sig.severity == "critical":
        return
    p, cues = model.score(sig.text)
    shown = "、".join(cues) or "整体措辞"
    if p >= model.threshold and sig.planned_gathering:
        # a gathering still being planned is high (DOMAIN §3): the model cannot tell when
        sig.review_cues.append(
            f"模型读出危险（{p:.2f}），但聚集尚在计划中（{sig.planned_gathering}），请核实：{shown}"
        )
    elif p >= model.threshold and (use := _ordinary_use(sig, rules)):
        # the model weighs a danger object's name; the grammar reads it in its ordinary use
        sig.review_cues.append(
            f"模型读出危险（{p:.2f}），但危险物品为日常用途（{use}），请核实：{shown}"
        )
    elif p >= model.threshold and (denied := _denied_danger(sig, rules)):
        # the report itself says nothing dangerous was seen: only a person may overrule it
        sig.review_cues.append(
            f"模型读出危险（{p:.2f}），但报告称未见危险（{denied}），请核实：{shown}"
        )
    elif p >= model.threshold:
        evidence = f"模型读出危险（{p:.2f}）：{shown}"
        sig.factors.append(Factor("critical", "learned_danger", evidence))
        sig.review_cues.append(f"仅模型读出危险（{p:.2f}），请核实：{shown}")
    elif p >= model.review_from:
        sig.review_cues.append(f"模型提示可能危险（{p:.2f}）：{shown}")


def _ordinary_use(sig: Signals, rules: Rules) -> str | None:
    """The ordinary-use word when every danger object of the report is beside one."""
    ordinary = rules.compiled.ordinary_use
    return ordinary.all_ordinary(sig.text) if ordinary is not None else None


def _denied_danger(sig: Signals, rules: Rules) -> str | None:
    """The words by which the report says no danger was seen (None if it does not)."""
    denied = rules.compiled.denied_danger
    m = denied.search(sig.text) if denied is not None else None
    return m.group(0) if m else None


def _apply_correction(inp: TriageInput, sig: Signals) -> str:
    """Put a coordinator's corrected type on the signals; describe the correction ("" if none)."""
    bits = []
    if inp.corrected_type and inp.corrected_type != sig.type_choice.code:
        bits.append(f"类型{sig.type_choice.code} → {inp.corrected_type}")
        sig.type_choice = TypeChoice(inp.corrected_type, sig.type_choice.score, "协调员更正")
    if inp.corrected_severity and inp.corrected_severity != sig.severity:
        bits.append(f"严重程度{sig.severity} → {inp.corrected_severity}")
    if not (inp.corrected_type or inp.corrected_severity):
        return ""
    return "协调员更正：" + ("，".join(bits) if bits else "维持规则结论")


def _severity_evidence(sig: Signals) -> str:
    if not sig.factors:
        return "无加重因素"
    return "；".join(f"{f.factor}({f.level})：{f.evidence}" for f in sig.factors)


def input_from_report(report: dict[str, Any]) -> TriageInput:
    """Build a TriageInput from a canonical report (DOMAIN.md §2); ValueError if malformed."""
    source = report.get("source")
    text = report.get("text")
    if source not in ("110", "12345", "grid"):
        raise ValueError(f"source: must be one of 110, 12345, grid, got {source!r}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text: required non-empty string")
    category = report.get("category")
    if category is not None and not isinstance(category, str):
        raise ValueError("category: must be a string")
    raw_parties = report.get("parties") or []
    if not isinstance(raw_parties, list):
        raise ValueError("parties: must be a list")
    parties: list[Party] = []
    for i, p in enumerate(raw_parties):
        if not isinstance(p, dict):
            raise ValueError(f"parties[{i}]: must be an object")
        name, role = p.get("name"), p.get("role")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"parties[{i}].name: must be a string")
        parties.append(Party(name=name, role=role if isinstance(role, str) else None))
    excluded = report.get("excluded_channels") or []
    if not isinstance(excluded, list):
        raise ValueError("excluded_channels: must be a list")
    return TriageInput(
        source=str(source),
        text=text,
        category=category,
        parties=tuple(parties),
        repeat_count=_count(report, "repeat_count", 1),
        excluded_channels=frozenset(str(c) for c in excluded),
        return_count=_count(report, "return_count", 0),
    )


def _count(report: dict[str, Any], key: str, default: int) -> int:
    """A non-negative integer field of the report, or the default when absent."""
    value = report.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key}: must be a non-negative integer")
    return value
