"""Triage's response bodies: a decision with its reasons, a case's decisions, the rules."""

from __future__ import annotations

from pydantic import Field

from shared.responses import Body, StoredBody, Timestamp


class DecisionReason(StoredBody):
    """Why: the words or fields that set the type, and the rule that chose the channel."""

    kind: str = Field(examples=["type", "channel"])
    code: str
    evidence: str


class DecisionFactor(StoredBody):
    """A severity factor found, and the words that show it."""

    level: str = Field(examples=["critical", "high", "medium"])
    factor: str
    evidence: str


class DecisionDeadlines(StoredBody):
    """When the channel must sign for the case, and mediate it by."""

    sign_for_due: str
    mediation_due: str
    sign_for_minutes: int
    mediation_days: int


class DecisionBody(StoredBody):
    """A triage decision (DOMAIN.md §3–5) with everything that explains it."""

    dispute_type: str
    severity: str
    channel: str
    co_channels: list[str]
    tier: str
    rule_id: str
    deadlines: DecisionDeadlines
    reasons: list[DecisionReason]
    factors: list[DecisionFactor]
    amount_yuan: int | None
    people_count: int | None
    rules_version: str
    decided_at: str
    review: bool = Field(description="the county centre must confirm it (conflicting cues)")
    review_cues: list[str]


class Preview(DecisionBody):
    """POST /v1/triage/preview: the decision for a report, nothing stored."""

    source_ref: str | None


class StoredDecision(DecisionBody):
    """One decision taken on a case (a case is decided again after a return or a review)."""

    attempt: int
    decided_at: Timestamp  # type: ignore[assignment]  # the row's time when the stored one lacks it


class CaseDecisions(Body):
    """Every decision taken on a case, oldest first."""

    case_id: str
    decisions: list[StoredDecision]


class RulesInfo(Body):
    """The version of the rules in force."""

    rules_version: str


class RulesReloaded(Body):
    """The rules file read again."""

    previous_version: str
    rules_version: str
