"""Payload models of every event on the bus, and the registry that knows their versions.

Events carry no personal data in clear: persons appear masked, and contact details travel
only as `sealed_contact`, encrypted with the deployment's PII key.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.events import EventRegistry


class CaseStatus(StrEnum):
    """The life cycle of DOMAIN.md §6."""

    received = "received"
    triaged = "triaged"
    assigned = "assigned"
    accepted = "accepted"
    mediating = "mediating"
    agreed = "agreed"
    follow_up = "follow_up"
    closed = "closed"
    returned = "returned"
    failed = "failed"
    escalated = "escalated"
    transferred = "transferred"
    reopened = "reopened"
    merged = "merged"


class PartyRef(BaseModel):
    """A party as events show it: persons masked, organisations named."""

    role: str | None = None
    kind: Literal["person", "organisation"] = "person"
    display: str = ""


class ReportReceived(BaseModel):
    """report.received v1 — a new case was opened from a report."""

    case_id: str
    source: str
    source_ref: str
    reported_at: datetime | None = None
    received_at: datetime
    text: str  # phone and ID numbers redacted
    category: str | None = None
    grid_code: str | None = None
    parties: list[PartyRef] = Field(default_factory=list)
    repeat_count: int = 1
    sealed_contact: str | None = None


class ReportRepeated(BaseModel):
    """report.repeated v1 — another report was merged into an open case (并单)."""

    case_id: str
    source: str
    source_ref: str
    repeat_count: int
    text: str


class CaseTriaged(BaseModel):
    """case.triaged v1 — triage decided type, severity, channel and tier."""

    case_id: str
    source: str
    source_ref: str
    dispute_type: str
    severity: str
    channel: str
    co_channels: list[str] = Field(default_factory=list)
    tier: str
    rule_id: str
    rules_version: str
    sign_for_due: datetime
    mediation_due: datetime
    attempt: int = 1
    excluded_channels: list[str] = Field(default_factory=list)
    decision: dict[str, Any] = Field(default_factory=dict)
    grid_code: str | None = None
    text: str = ""
    parties: list[PartyRef] = Field(default_factory=list)
    sealed_contact: str | None = None


class CaseReturned(BaseModel):
    """case.returned v1 — a channel sent the case back (退单); triage routes it again."""

    case_id: str
    channel: str
    reason: str
    return_count: int
    excluded_channels: list[str]


class CaseAgreed(BaseModel):
    """case.agreed v1 — mediation reached an agreement; follow-up schedules visits."""

    case_id: str
    agreement_id: str
    terms: str
    amount_yuan: int | None = None
    performance_due: datetime | None = None
    agreed_at: datetime
    channel: str
    tier: str
    organisation_id: str | None = None
    mediator_id: str | None = None


class CaseReopened(BaseModel):
    """case.reopened v1 — a follow-up visit found the agreement not honoured."""

    case_id: str
    reason: str
    visit_id: str


class CaseClosed(BaseModel):
    """case.closed v1 — the agreement was honoured and the loop is closed."""

    case_id: str
    outcome: str


class SupervisionRaised(BaseModel):
    """supervision.raised v1 — a deadline was missed (督办) and the tier is told."""

    case_id: str
    kind: Literal["sign_for_overdue", "mediation_overdue"]
    tier: str
    channel: str
    due_at: datetime
    raised_at: datetime


class TrailAppended(BaseModel):
    """trail.appended v1 — one status transition of a case, from any service."""

    case_id: str
    at: datetime
    actor: str  # "system:triage" or "user:<id>"
    actor_role: str = "system"
    action: str
    from_status: str | None = None
    to_status: str
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)  # never personal data
    # optional, for early warning: keyed blind indices of the parties' phones/ID numbers (never
    # the numbers) and the report's coordinates sealed with the PII key
    party_hashes: list[str] = Field(default_factory=list)
    sealed_location: str | None = None


class WarningKind(StrEnum):
    """The early warnings of DOMAIN.md §8 (风险研判)."""

    repeat_party = "repeat_party"
    repeat_after_agreement = "repeat_after_agreement"
    rising_area = "rising_area"
    group_risk = "group_risk"
    escalating = "escalating"
    soon_due = "soon_due"


class WarningStatus(StrEnum):
    """Where a warning stands: raised (open), seen by a coordinator, or no longer holding."""

    open = "open"
    acknowledged = "acknowledged"
    cleared = "cleared"


class WarningRaised(BaseModel):
    """warning.raised v1 — a warning's condition first holds; it names its cases and facts."""

    warning_id: str
    kind: WarningKind
    key: str  # the case id, area code or party/employer hash the warning is about
    tier: str | None = None  # the coordinating tier it goes to
    area_code: str | None = None
    case_ids: list[str] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)  # never a phone or ID number in clear
    raised_at: datetime


class WarningCleared(BaseModel):
    """warning.cleared v1 — a warning's condition no longer holds."""

    warning_id: str
    kind: WarningKind
    key: str
    case_ids: list[str] = Field(default_factory=list)
    reason: str
    cleared_at: datetime


REGISTRY = EventRegistry()
_CURRENT: dict[str, type[BaseModel]] = {
    "report.received": ReportReceived,
    "report.repeated": ReportRepeated,
    "case.triaged": CaseTriaged,
    "case.returned": CaseReturned,
    "case.agreed": CaseAgreed,
    "case.reopened": CaseReopened,
    "case.closed": CaseClosed,
    "supervision.raised": SupervisionRaised,
    "trail.appended": TrailAppended,
    "warning.raised": WarningRaised,
    "warning.cleared": WarningCleared,
}
for _type, _model in _CURRENT.items():
    REGISTRY.register(_type, _model)
