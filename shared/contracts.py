"""Payload models of every event on the bus, and the registry that knows their versions.

Events carry no personal data in clear: persons appear masked, and contact details travel
only as `sealed_contact`, encrypted with the deployment's PII key.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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


class Source(StrEnum):
    """Where a report came from (DOMAIN.md §2): adding a source starts here."""

    police_110 = "110"
    hotline_12345 = "12345"
    grid = "grid"


class Channel(StrEnum):
    """Who mediates (DOMAIN.md §4)."""

    police = "police"
    court = "court"
    labour = "labour"
    medical = "medical"
    people = "people"


class Tier(StrEnum):
    """The level that owns a case: grid → town → county."""

    grid = "grid"
    town = "town"
    county = "county"


class Severity(StrEnum):
    """How urgent a case is."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class DisputeType(StrEnum):
    """What the dispute is about."""

    marriage_family = "marriage_family"
    neighbour = "neighbour"
    labour = "labour"
    medical = "medical"
    debt_contract = "debt_contract"
    property_mgmt = "property_mgmt"
    land = "land"
    traffic = "traffic"
    consumer = "consumer"
    public_order = "public_order"
    other = "other"


class SupervisionKind(StrEnum):
    """A missed deadline that raises a supervision notice (督办)."""

    sign_for_overdue = "sign_for_overdue"
    mediation_overdue = "mediation_overdue"


class TrailAction(StrEnum):
    """What a trail entry records; each action has a typed details model (TRAIL_DETAILS)."""

    receive = "receive"
    merge = "merge"
    triage = "triage"
    retriage = "retriage"
    reroute = "reroute"
    assign = "assign"
    reassign = "reassign"
    unassigned = "unassigned"
    accept = "accept"
    return_ = "return"
    note = "note"
    agree = "agree"
    fail = "fail"
    escalate = "escalate"
    transfer = "transfer"
    supervise = "supervise"
    resume = "resume"
    follow_up = "follow_up"
    visit = "visit"
    close = "close"
    reopen = "reopen"
    extend = "extend"
    acknowledge_warning = "acknowledge_warning"
    review_confirm = "review_confirm"
    review_correct = "review_correct"


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
    # optional (v1 stays): triage is unsure and the county centre reviews it (issue 10)
    review: bool = False
    review_cues: list[str] = Field(default_factory=list)
    # set when this decision is a coordinator's correction: who, why, from → to
    correction: dict[str, Any] | None = None


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
    # causal order: the trail entries (event ids) this one follows, and its per-case sequence
    # (one more than the highest it follows; 0 for entries written before this existed)
    follows: list[str] = Field(default_factory=list)
    seq: int = 0
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


class WarningAcknowledged(BaseModel):
    """warning.acknowledged v1 — a coordinator has looked at a warning (研判) and left a note."""

    warning_id: str
    kind: WarningKind
    key: str
    case_ids: list[str] = Field(default_factory=list)
    acknowledged_by: str  # "user:<id>"
    note: str  # phone and ID numbers masked
    acknowledged_at: datetime


# ---------------------------------------------------------------------------------------------
# What a trail entry says about its case: one typed model per action. Producers must write
# exactly these fields (Tx.transition refuses others); consumers read them through the models.


class TrailDetails(BaseModel):
    """Fields any trail entry may carry about its case (never personal data)."""

    model_config = ConfigDict(extra="allow")

    source: str | None = None
    source_ref: str | None = None
    dispute_type: str | None = None
    severity: str | None = None
    channel: str | None = None
    co_channels: list[str] | None = None
    tier: str | None = None
    grid_code: str | None = None
    organisation_id: str | None = None
    mediator_id: str | None = None
    sign_for_due: datetime | None = None
    mediation_due: datetime | None = None
    parties: list[PartyRef] | None = None  # persons masked


class ReceiveDetails(TrailDetails):
    """receive (intake): a new case, with its masked parties."""

    source: str
    source_ref: str
    report_id: str
    via: str
    category: str | None = None
    parties: list[PartyRef] = Field(default_factory=list)


class MergeDetails(TrailDetails):
    """merge (intake): another report joined the case (并单)."""

    source: str
    source_ref: str
    report_id: str
    via: str
    repeat_count: int


class TriageDeadlines(BaseModel):
    """The deadlines a triage decision sets."""

    model_config = ConfigDict(extra="allow")

    sign_for_due: datetime | None = None
    mediation_due: datetime | None = None


class TriageDetails(TrailDetails):
    """triage / retriage / reroute (triage): the routing decision."""

    dispute_type: str
    severity: str
    channel: str
    co_channels: list[str] = Field(default_factory=list)
    tier: str
    rule_id: str
    rules_version: str
    deadlines: TriageDeadlines = Field(default_factory=TriageDeadlines)
    reasons: list[Any] = Field(default_factory=list)
    attempt: int = 1
    # when in doubt, say so (issue 10): the cues that sent the decision to the review queue,
    # and a coordinator's correction (who, note, from → to)
    review: bool = False
    review_cues: list[str] = Field(default_factory=list)
    correction: dict[str, Any] | None = None


class ReviewConfirmDetails(TrailDetails):
    """review_confirm (triage): a coordinator confirmed a doubtful decision as it stood."""

    review_cues: list[str] = Field(default_factory=list)
    decision: dict[str, Any] = Field(default_factory=dict)
    late: bool = False


class MediationDetails(TrailDetails):
    """Every mediation entry: the case's facts as mediation holds them."""

    organisation_kind: str | None = None
    queued: bool | None = None
    signed_on_time: bool | None = None
    return_count: int | None = None
    note_id: int | str | None = None
    agreement_id: str | None = None
    amount_yuan: int | None = None
    performance_due: datetime | None = None
    agreed_on_time: bool | None = None
    first_tier: str | None = None
    escalations: int | None = None
    from_tier: str | None = None
    to_tier: str | None = None
    target: str | None = None
    visit_id: str | None = None
    attempt: int | None = None


class ExtendDetails(MediationDetails):
    """extend (mediation): the court's one extension of the mediation deadline (延期)."""

    previous_mediation_due: datetime
    extension_days: int


class AcknowledgeWarningDetails(TrailDetails):
    """acknowledge_warning (followup): a coordinator has seen a warning naming this case."""

    warning_id: str
    kind: WarningKind


class SuperviseDetails(MediationDetails):
    """supervise (mediation): which deadline was missed."""

    kind: SupervisionKind

    @model_validator(mode="before")
    @classmethod
    def _legacy_kind(cls, data: Any) -> Any:
        # entries written before the contract named the kind `supervision`
        if isinstance(data, dict) and "kind" not in data and "supervision" in data:
            data = {k: v for k, v in data.items() if k != "supervision"} | {
                "kind": data["supervision"]
            }
        return data


class FollowUpDetails(TrailDetails):
    """follow_up (follow-up): visits scheduled after an agreement."""

    agreement_id: str
    round: int
    visits_due: list[datetime] = Field(default_factory=list)


class VisitDetails(TrailDetails):
    """visit / close / reopen (follow-up): one recorded visit."""

    visit_id: str
    visit_number: int
    round: int
    agreement_id: str | None = None
    method: str
    honoured: bool
    satisfaction: int | None = None


A = TrailAction
TRAIL_DETAILS: dict[str, type[TrailDetails]] = {
    A.receive: ReceiveDetails,
    A.merge: MergeDetails,
    A.triage: TriageDetails,
    A.retriage: TrailDetails,  # triage writes TriageDetails, mediation MediationDetails
    A.reroute: TriageDetails,
    A.assign: MediationDetails,
    A.reassign: MediationDetails,
    A.unassigned: MediationDetails,
    A.accept: MediationDetails,
    A.return_: MediationDetails,
    A.note: MediationDetails,
    A.agree: MediationDetails,
    A.fail: MediationDetails,
    A.escalate: MediationDetails,
    A.transfer: MediationDetails,
    A.supervise: SuperviseDetails,
    A.resume: MediationDetails,
    A.follow_up: FollowUpDetails,
    A.visit: VisitDetails,
    A.close: VisitDetails,
    A.reopen: VisitDetails,
    A.extend: ExtendDetails,
    A.acknowledge_warning: AcknowledgeWarningDetails,
    A.review_confirm: ReviewConfirmDetails,
    A.review_correct: TriageDetails,
}


class TrailContractError(ValueError):
    """A producer wrote trail details its action's model does not allow."""


def produce_trail_details(
    action: str, details: dict[str, Any], producer_model: type[TrailDetails] | None = None
) -> dict[str, Any]:
    """Validate what a producer writes for an action; refuse fields the model does not know."""
    model = producer_model or TRAIL_DETAILS.get(action)
    if model is None:
        raise TrailContractError(f"unknown trail action {action!r}")
    try:
        parsed = model.model_validate(details)
    except ValidationError as exc:
        raise TrailContractError(f"{action} details: {exc.errors()[0]['loc']}") from None
    extra = sorted((parsed.model_extra or {}).keys())
    if extra and model is not TrailDetails:
        raise TrailContractError(f"{action} details: fields {extra} are not in {model.__name__}")
    out: dict[str, Any] = json.loads(parsed.model_dump_json(exclude_unset=True))
    return out


def read_trail_details(action: str, details: dict[str, Any]) -> TrailDetails:
    """Details as a consumer reads them: the action's model, or the common fields if it fails."""
    model = TRAIL_DETAILS.get(action, TrailDetails)
    try:
        return model.model_validate(details)
    except ValidationError:  # an older or foreign producer: keep what the common model reads
        common = {k: v for k, v in details.items() if k in TrailDetails.model_fields}
        try:
            return TrailDetails.model_validate(common)
        except ValidationError:
            return TrailDetails()


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
    "warning.acknowledged": WarningAcknowledged,
}
for _type, _model in _CURRENT.items():
    REGISTRY.register(_type, _model)
