"""Followup's response bodies: the ledger's cases and trail, stats, visits, warnings, places.

Routes that answer with an ETag (`tagged`) render their body themselves: there the model
documents the body, and tests/contract/test_response_models.py checks real bodies against it.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from shared.responses import Body, StoredBody

# times are ISO 8601 strings in UTC ("…Z"), written by the routes themselves


class PartyView(StoredBody):
    """A party as the ledger keeps it: persons masked, organisations named."""

    role: str | None = None
    kind: str | None = None
    display: str | None = None


class CasePublic(Body):
    """A case as dashboards see it: no personal data, parties masked."""

    case_id: str
    status: str
    source: str | None
    source_ref: str | None
    dispute_type: str | None
    severity: str | None
    channel: str | None
    co_channels: list[str] | None
    tier: str | None
    first_tier: str | None
    organisation_id: str | None
    mediator_id: str | None
    grid_code: str | None
    parties: list[PartyView] | None
    sign_for_due: str | None
    mediation_due: str | None
    sign_for_overdue: bool
    mediation_overdue: bool
    overdue: bool
    created_at: str | None
    updated_at: str | None
    received_at: str | None
    agreed_at: str | None
    closed_at: str | None
    return_count: int
    escalation_count: int
    reopen_count: int
    satisfaction: int | None
    entries: int = Field(description="trail entries applied")
    version: int = Field(description="ledger sequence of the last change (the cursor)")


class CasePage(Body):
    """A page of cases in ledger order; `next_cursor` continues it."""

    items: list[CasePublic]
    count: int
    has_more: bool
    next_cursor: str | None


class TrailEntry(Body):
    """A trail entry with its chain links; `details` is the action's typed model
    (shared/contracts.py TRAIL_DETAILS)."""

    seq: int
    at: str | None
    actor: str
    actor_role: str | None
    action: str
    from_status: str | None
    to_status: str
    reason: str | None
    details: dict[str, Any]
    producer: str | None
    event_id: str | None
    prev_hash: str
    hash: str


class Trail(Body):
    """Every entry of a case's trail, in causal order."""

    case_id: str
    entries: list[TrailEntry]


class ChainCheck(Body):
    """Does every entry still say what it said when appended?"""

    case_id: str
    valid: bool
    entries: int
    broken_at: int | None
    reason: str | None


class ReportScope(Body):
    """The slice of the ledger a figure covers (shared.scope's rule)."""

    role: str
    all_cases: bool
    channel: str | None
    organisation_id: str | None
    tier: str | None
    tiers: list[str] | None
    grid_prefixes: list[str]


class Period(Body):
    """The days a figure covers (local dates); `changed_since` for /v1/stats?since=."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str | None = Field(alias="from")
    to: str | None
    changed_since: str | None = None


class Rate(Body):
    """A share with its numerator and denominator."""

    settled: int | None = None
    unsettled: int | None = None
    agreed_with_deadline: int | None = None
    on_time: int | None = None
    at_first_tier: int | None = None
    rate: float | None


class Satisfaction(Body):
    """Mean satisfaction (1–5) of the visits that asked."""

    mean: float | None
    responses: int


class Stats(Body):
    """Counts and rates over the cases the caller may see."""

    by_status: dict[str, int]
    by_channel: dict[str, int]
    by_tier: dict[str, int]
    by_dispute_type: dict[str, int]
    by_source: dict[str, int]
    total: int
    mediation_success: Rate
    on_time: Rate
    satisfaction: Satisfaction
    settled_at_first_tier: Rate
    backlog: int
    overdue: int
    period: Period
    time_zone: str
    scope: ReportScope


class Measures(StoredBody):
    """The measures of a bucket or an area (the columns of the 报表)."""

    received: int
    settled: int
    unsettled: int
    success_rate: float | None
    agreed_with_deadline: int
    on_time: int
    on_time_rate: float | None
    settled_at_first_tier: int
    first_tier_rate: float | None
    satisfaction_mean: float | None
    satisfaction_responses: int
    backlog: int
    overdue: int


class SeriesRow(Measures):
    """One bucket (× group) of a series."""

    bucket: str
    group: str


class Series(Body):
    """GET /v1/stats/series as JSON (CSV and XLSX carry the same rows)."""

    period: Period
    time_zone: str
    bucket: str
    group_by: str | None
    level: str | None
    scope: ReportScope
    items: list[SeriesRow]


class AreaRow(Measures):
    """One area's measures and the warnings open in it now."""

    area: str
    open_warnings: int
    warnings_by_kind: dict[str, int]


class AreasSummary(Body):
    """Per area at a grid-code level."""

    period: Period
    time_zone: str
    level: str
    scope: ReportScope
    items: list[AreaRow]


class Visit(Body):
    """A follow-up visit (回访); the note only for those who see the case in clear."""

    visit_id: str
    case_id: str
    round: int
    number: int
    agreement_id: str
    state: str = Field(examples=["scheduled", "done", "cancelled"])
    due_at: str | None
    method: str | None
    honoured: bool | None
    satisfaction: int | None
    note: str | None
    note_hidden: bool
    recorded_at: str | None
    recorded_by: str | None


class VisitRecorded(Body):
    """201: the visit recorded; the case's status after it."""

    case_status: str
    visit: Visit


class CaseVisits(Body):
    """Every visit of a case."""

    case_id: str
    status: str | None
    visits: list[Visit]


class DueVisit(Visit):
    """A scheduled visit on a coordinator's work list, with who handles its case."""

    channel: str | None
    tier: str | None
    organisation_id: str | None
    mediator_id: str | None
    grid_code: str | None


class DueVisits(Body):
    """Scheduled visits due by a time, earliest first."""

    by: str | None
    items: list[DueVisit]


class WarningPublic(Body):
    """An early warning (风险研判): its cases, the facts that raised it, where it stands."""

    warning_id: str
    kind: str
    status: str
    key: str
    tier: str | None
    area_code: str | None
    case_ids: list[str]
    hidden_cases: int = Field(description="named cases outside the caller's scope")
    facts: dict[str, Any]
    raised_at: str | None
    updated_at: str | None
    acknowledged_at: str | None
    acknowledged_by: str | None
    note: str | None
    cleared_at: str | None
    clear_reason: str | None


class WarningPage(Body):
    """A page of warnings; `next_cursor` continues it."""

    items: list[WarningPublic]
    count: int
    has_more: bool
    next_cursor: str | None


class PlaceLocation(Body):
    """Coordinates: exact (precision_m null) for the case's mediators, else ~100 m."""

    lat: float | None
    lon: float | None
    precision_m: int | None


class CasePlace(Body):
    """Where a case is: its grid code, the areas it lies in, and coordinates."""

    case_id: str
    grid_code: str | None
    areas: dict[str, str]
    location: PlaceLocation | None


class MapPoint(Body):
    """A case on the map (coarse point)."""

    case_id: str
    grid_code: str | None
    status: str
    dispute_type: str | None
    severity: str | None
    lat: float | None
    lon: float | None


class MapPoints(Body):
    """Coarse points of the cases received in a period."""

    period: Period
    time_zone: str
    precision_m: int
    items: list[MapPoint]
