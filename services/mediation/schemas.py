"""Request and response bodies of the mediation routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from shared.responses import Body, StoredBody, StoredText, Timestamp

DUE_FROM = datetime(2000, 1, 1, tzinfo=UTC)
DUE_BEFORE = datetime(9999, 12, 31, tzinfo=UTC)  # every zone's local day is in the calendar
AMOUNT_MAX = 2**31 - 1  # agreements.amount_yuan is an INTEGER column: 32 bits on PostgreSQL


class ReasonIn(BaseModel):
    """Why (退单, failure, escalation)."""

    reason: StoredText = Field(min_length=1, max_length=2000)


class NoteIn(BaseModel):
    """A progress note."""

    text: str = Field(min_length=1, max_length=10000)


class AgreementIn(BaseModel):
    """An agreement reached by mediation."""

    terms: str = Field(min_length=1, max_length=20000)
    amount_yuan: int | None = Field(default=None, ge=0, le=AMOUNT_MAX)
    performance_due: datetime | None = None

    @field_validator("performance_due")
    @classmethod
    def _due_in_the_calendar(cls, due: datetime | None) -> datetime | None:
        """A due time from 2000 on, a day inside the calendar's end: the agreement's document
        prints it in the service's time zone (9999-12-31T20:00Z is year 10000 in Shanghai)."""
        if due is None:
            return None
        try:
            utc = (due if due.tzinfo else due.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:
            raise ValueError("performance_due is beyond the calendar") from None
        if not DUE_FROM <= utc < DUE_BEFORE:
            raise ValueError("performance_due is before 2000 or beyond the calendar")
        return due


class TransferIn(BaseModel):
    """Where a failed case goes."""

    target: Literal["litigation", "arbitration"]
    reason: StoredText = Field(min_length=1, max_length=2000)


class AssignIn(BaseModel):
    """A coordinator's manual assignment."""

    organisation_id: StoredText = Field(min_length=1, max_length=64)
    mediator_id: StoredText | None = Field(default=None, max_length=64)
    reason: StoredText = Field(default="协调员指派", max_length=2000)


# --- response bodies --------------------------------------------------------------------------


class PartyView(StoredBody):
    """A party as triage passed it on: persons masked, organisations named."""

    role: str | None = None
    kind: str | None = Field(default=None, examples=["person", "organisation"])
    display: str | None = None


class ContactPerson(StoredBody):
    """A reporter or party with contact details (masked unless seen in clear)."""

    name: str | None = None
    phone: str | None = None
    id_number: str | None = None
    role: str | None = None


class Contact(StoredBody):
    """How to reach the people of the case: in clear only for its mediator (and admins)."""

    reporter: ContactPerson | None = None
    parties: list[ContactPerson] | None = None
    address: str | None = None


class NoteView(Body):
    """A progress note (redacted for masked readers)."""

    id: int
    author: str
    at: Timestamp
    text: str


class AgreementView(Body):
    """The agreement reached, if any."""

    agreement_id: str
    amount_yuan: int | None
    performance_due: Timestamp | None
    agreed_at: Timestamp
    terms: str


class TrailEntryView(Body):
    """One step of the case in mediation."""

    at: Timestamp
    actor: str
    actor_role: str | None
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None


class CaseView(Body):
    """A case as the caller may see it. After an action that took the case out of the caller's
    sight (an escalation past their tier), only `case_id` and `visible: false` are shown."""

    case_id: str
    visible: bool | None = Field(default=None, description="false: no longer in your scope")
    status: str | None = None
    source: str | None = None
    source_ref: str | None = None
    dispute_type: str | None = None
    severity: str | None = None
    channel: str | None = None
    co_channels: list[str] | None = None
    tier: str | None = None
    first_tier: str | None = None
    rule_id: str | None = None
    grid_code: str | None = None
    organisation_id: str | None = None
    mediator_id: str | None = None
    reader_organisations: list[str] | None = None
    sign_for_due: Timestamp | None = None
    mediation_due: Timestamp | None = None
    sign_for_overdue: bool | None = None
    mediation_overdue: bool | None = None
    return_count: int | None = None
    escalations: int | None = None
    outcome: str | None = None
    transfer_target: str | None = None
    accepted_at: Timestamp | None = None
    extended_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    text: str | None = None
    parties: list[PartyView] | None = None
    contact: Contact | None = None
    personal_data: str | None = Field(default=None, examples=["clear", "masked"])
    read_only: bool | None = None
    allowed_actions: list[str] | None = None


class CaseDetail(CaseView):
    """GET one case: the case with its notes, agreement and this service's trail."""

    notes: list[NoteView] | None = None
    agreement: AgreementView | None = None
    trail: list[TrailEntryView] | None = None


class NoteAdded(CaseView):
    """201: the note stored; the case as it now stands."""

    note_id: int


class AgreementRecorded(CaseView):
    """201: the agreement stored; its document is at `document_url`."""

    agreement_id: str
    document_url: str


class WorkList(Body):
    """The caller's work list, a page at a time (`after` = the last case_id seen)."""

    items: list[CaseView]
    next_after: str | None


class SupervisionView(Body):
    """A supervision notice (督办)."""

    id: int | None
    case_id: str
    kind: str
    tier: str | None
    channel: str | None
    organisation_id: str | None
    mediator_id: str | None
    due_at: Timestamp
    raised_at: Timestamp


class SupervisionList(Body):
    """Supervision notices for the caller's tier and area."""

    items: list[SupervisionView]


class ChannelView(Body):
    """A mediation channel plugin."""

    code: str
    name: str
    document_title: str
    transfer_targets: list[str]


class ChannelList(Body):
    """The channel plugins of this deployment."""

    items: list[ChannelView]


class OrganisationView(Body):
    """A mediation organisation or coordination centre."""

    id: str
    name: str
    kind: str
    channel: str | None
    tier: str
    grid_codes: list[str]
    active: bool


class OrganisationList(Body):
    """Every organisation."""

    items: list[OrganisationView]


class StaffView(Body):
    """A member of staff."""

    id: str
    name: str
    role: str
    channel: str | None
    tier: str | None
    organisation_id: str | None
    day_shift: bool
    night_on_call: bool
    active: bool


class StaffList(Body):
    """Staff, optionally of one organisation or role."""

    items: list[StaffView]


class StaffToken(Body):
    """A bearer token for a member of staff."""

    token: str
    expires_at: Timestamp
    role: str


class RaisedSupervision(Body):
    """A supervision the scan raised."""

    case_id: str
    kind: str


class ScanResult(Body):
    """What one overdue scan raised."""

    raised: list[RaisedSupervision]
