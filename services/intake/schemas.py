"""Intake's response bodies (request bodies are parsed by canonical.py and api.py)."""

from __future__ import annotations

from pydantic import Field

from shared.errors import FieldProblem
from shared.responses import Body, StoredBody


class Person(StoredBody):
    """A reporter or a party: masked (138****1234) unless the caller sees the case in clear."""

    name: str | None = None
    phone: str | None = None
    id_number: str | None = None
    role: str | None = None


class Location(StoredBody):
    """Where: the address masked (and no coordinates) unless the caller sees it in clear."""

    address: str | None = None
    grid_code: str | None = None
    lat: float | None = None
    lon: float | None = None


class ReportReceipt(Body):
    """202: the report is stored (a new case, or merged into an open one: 并单)."""

    case_id: str
    source: str
    source_ref: str
    status_url: str = Field(description="GET it for the report's status")
    merged: bool
    duplicate: bool = Field(description="the same (source, source_ref) was sent before")


class BatchItem(Body):
    """One report of a batch: 202 with its receipt, or 422/403/409 with the fields to blame."""

    index: int
    status: int = Field(examples=[202, 422, 403, 409])
    errors: list[FieldProblem] | None = None
    case_id: str | None = None
    source: str | None = None
    source_ref: str | None = None
    status_url: str | None = None
    merged: bool | None = None
    duplicate: bool | None = None


class BatchResult(Body):
    """Each report of the batch in its own transaction, with its own result."""

    accepted: int
    rejected: int
    results: list[BatchItem]


class ReportStatus(Body):
    """A report's case and status as its sender may read them (personal data masked)."""

    source: str
    source_ref: str
    case_id: str
    status: str
    status_note: str
    status_at: str
    merged: bool
    repeat_count: int = Field(description="this sender's own reports of the case")
    dispute_type: str | None
    received_at: str
    reported_at: str | None
    category: str | None
    reporter: Person | None
    parties: list[Person]
    location: Location | None


class ReportView(Body):
    """One stored report of a case."""

    source: str
    source_ref: str
    via: str
    merged: bool
    received_at: str
    reported_at: str | None
    category: str | None
    grid_code: str | None
    text: str
    reporter: Person | None
    parties: list[Person]
    location: Location | None


class CaseReports(Body):
    """Every report of a case, in clear or masked as the caller's sight allows."""

    case_id: str
    status: str
    repeat_count: int
    dispute_type: str | None
    personal_data: str = Field(examples=["clear", "masked"])
    reports: list[ReportView]


class IntegratorCreated(Body):
    """A new integrator; the API key and webhook secret are shown this once."""

    id: str
    name: str
    source: str
    api_key: str
    callback_url: str | None
    webhook_secret: str | None


class Open311Service(Body):
    """A GeoReport service: one per dispute type."""

    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str


class Open311Created(Body):
    """A created GeoReport service request."""

    service_request_id: str
    service_notice: str


class Open311Request(Body):
    """A GeoReport service request's status (no personal data)."""

    service_request_id: str
    status: str = Field(examples=["open", "closed"])
    status_notes: str
    service_name: str
    service_code: str
    requested_datetime: str
    updated_datetime: str
    agency_responsible: str | None = None


class Open311Error(Body):
    """GeoReport's error list item: the HTTP status and `<field>: <reason>`."""

    code: int
    description: str
