"""Mediation tables and the only queries on them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Index, String, UniqueConstraint, and_, bindparam, func, or_
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.mediation.domain import WORKLOAD_STATUSES, MediatorFacts, OrgFacts
from shared.auth import StaffPrincipal
from shared.db import delivery_tables, json_column, tz
from shared.scope import COUNTY, ScopeColumns, area_condition, scope_filter


class MediationBase(SQLModel, registry=registry()):
    """Base of the mediation service's own tables."""


class Organisation(MediationBase, table=True):
    """A mediation organisation of one channel and tier, or a coordination centre (no channel)."""

    __tablename__ = "organisations"
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(default="mediation", max_length=20)  # mediation | coordination
    channel: str | None = Field(default=None, max_length=20, index=True)
    tier: str = Field(max_length=10, index=True)
    grid_codes: list[str] = json_column()
    active: bool = True
    created_at: datetime = tz(nullable=False)

    def facts(self) -> OrgFacts:
        """The organisation as assignment sees it."""
        return OrgFacts(self.id, self.kind, self.channel, self.tier, tuple(self.grid_codes))


class StaffMember(MediationBase, table=True):
    """A mediator, coordinator or viewer; mediators have duty shifts (坐班) and on-call (值守)."""

    __tablename__ = "staff"
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=100)
    role: str = Field(default="mediator", max_length=20)
    channel: str | None = Field(default=None, max_length=20)
    tier: str | None = Field(default=None, max_length=10)
    organisation_id: str | None = Field(
        default=None, foreign_key="organisations.id", max_length=64, index=True
    )
    day_shift: bool = True
    night_on_call: bool = False
    active: bool = True
    created_at: datetime = tz(nullable=False)
    # bumped when deactivated or moved: tokens issued before stop working (shared.staff_status)
    token_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})

    def facts(self) -> MediatorFacts:
        """The mediator as assignment sees it."""
        return MediatorFacts(
            self.id, self.organisation_id or "", self.day_shift, self.night_on_call, self.active
        )


class MediationCase(MediationBase, table=True):
    """A case as mediation works it: routing, assignment, deadlines and outcome."""

    __tablename__ = "mediation_cases"
    # open cases per mediator (assignment) counted from the index alone; also by organisation
    __table_args__ = (
        Index("ix_mediation_cases_workload", "organisation_id", "mediator_id", "status"),
    )
    case_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=20, index=True)
    source: str = Field(max_length=10)
    source_ref: str = Field(max_length=128)
    dispute_type: str = Field(max_length=40)
    severity: str = Field(max_length=10)
    channel: str = Field(max_length=20, index=True)
    co_channels: list[str] = json_column()
    tier: str = Field(max_length=10, index=True)
    rule_id: str = Field(max_length=40)
    attempt: int = 1
    grid_code: str | None = Field(default=None, max_length=64)
    area_code: str = Field(default="", sa_column=Column(String(64), index=True, nullable=False))
    organisation_id: str | None = Field(default=None, max_length=64)
    mediator_id: str | None = Field(default=None, max_length=64, index=True)
    text: str = ""  # redacted narrative from triage
    parties: list[dict[str, Any]] = json_column()  # masked PartyRefs
    sealed_contact: str | None = None  # encrypted contact details, unsealed on read
    sign_for_due: datetime | None = tz(nullable=True)
    mediation_due: datetime | None = tz(nullable=True)
    sign_for_window_s: int = 0  # how long signing for may take, for re-assignments
    sign_for_overdue: bool = False
    mediation_overdue: bool = False
    return_count: int = 0
    excluded_channels: list[str] = json_column()
    escalations: int = 0
    first_tier: str = Field(default="", max_length=10)
    outcome: str | None = Field(default=None, max_length=40)
    transfer_target: str | None = Field(default=None, max_length=20)
    accepted_at: datetime | None = tz(nullable=True)
    extended_at: datetime | None = tz(nullable=True)  # the court's one extension (延期)
    created_at: datetime = tz(nullable=False)
    updated_at: datetime = tz(nullable=False)


CASE_COLUMNS = tuple(c.name for c in MediationCase.__table__.columns)  # type: ignore[attr-defined]


@dataclass
class NewCase:
    """A case first seen in this transaction, as a plain object: its row is inserted by Core
    (Tx.add_rows, one executemany per consumer batch), not by an ORM object per event.

    Later events of the same batch find it in the batch (assignment.find_case) and change it;
    `save` copies the changes into the queued row, which is written only at the commit.
    The fields are MediationCase's columns with the same defaults (a unit test keeps them so).
    """

    case_id: str
    status: str
    source: str
    source_ref: str
    dispute_type: str
    severity: str
    channel: str
    tier: str
    rule_id: str
    created_at: datetime
    updated_at: datetime
    co_channels: list[str] = field(default_factory=list)
    attempt: int = 1
    grid_code: str | None = None
    area_code: str = ""
    organisation_id: str | None = None
    mediator_id: str | None = None
    text: str = ""
    parties: list[dict[str, Any]] = field(default_factory=list)
    sealed_contact: str | None = None
    sign_for_due: datetime | None = None
    mediation_due: datetime | None = None
    sign_for_window_s: int = 0
    sign_for_overdue: bool = False
    mediation_overdue: bool = False
    return_count: int = 0
    excluded_channels: list[str] = field(default_factory=list)
    escalations: int = 0
    first_tier: str = ""
    outcome: str | None = None
    transfer_target: str | None = None
    accepted_at: datetime | None = None
    extended_at: datetime | None = None
    # not columns: the queued row once inserted, and the organisations given a read-only copy
    row: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    readers: set[str] = field(default_factory=set, repr=False, compare=False)

    def values(self) -> dict[str, Any]:
        """The row to insert (column → value)."""
        return {name: getattr(self, name) for name in CASE_COLUMNS}


AnyCase = MediationCase | NewCase


class CaseReader(MediationBase, table=True):
    """A read-only copy for a co-channel organisation (its mediators read, never act)."""

    __tablename__ = "case_readers"
    case_id: str = Field(primary_key=True, max_length=64)
    organisation_id: str = Field(primary_key=True, max_length=64, index=True)
    channel: str = Field(max_length=20)


class CaseNote(MediationBase, table=True):
    """A progress note of a mediator."""

    __tablename__ = "case_notes"
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, max_length=64)
    author: str = Field(max_length=64)
    text: str
    at: datetime = tz(nullable=False)


class Agreement(MediationBase, table=True):
    """A mediation agreement (调解协议); the document is rendered from it on request."""

    __tablename__ = "agreements"
    id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    terms: str
    amount_yuan: int | None = None
    performance_due: datetime | None = tz(nullable=True)
    agreed_at: datetime = tz(nullable=False)
    channel: str = Field(max_length=20)
    tier: str = Field(max_length=10)
    organisation_id: str | None = Field(default=None, max_length=64)
    mediator_id: str | None = Field(default=None, max_length=64)


class Supervision(MediationBase, table=True):
    """A supervision notice (督办): raised once per case and kind."""

    __tablename__ = "supervisions"
    __table_args__ = (UniqueConstraint("case_id", "kind", name="uq_supervision_case_kind"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=30)
    tier: str = Field(max_length=10, index=True)
    channel: str = Field(max_length=20)
    organisation_id: str | None = Field(default=None, max_length=64)
    mediator_id: str | None = Field(default=None, max_length=64)
    area_code: str = Field(default="", max_length=64)
    due_at: datetime = tz(nullable=False)
    raised_at: datetime = tz(nullable=False)


TABLES = delivery_tables(MediationBase)
metadata = MediationBase.metadata
TrailRow = TABLES.trail


# --- organisations and staff ------------------------------------------------------------------


async def organisations(session: AsyncSession, active_only: bool = True) -> list[Organisation]:
    """Every organisation, by id."""
    stmt = select(Organisation)
    if active_only:
        stmt = stmt.where(col(Organisation.active).is_(True))
    return list((await session.exec(stmt.order_by(col(Organisation.id)))).all())


async def staff_of(
    session: AsyncSession, organisation_id: str | None = None, role: str | None = None
) -> list[StaffMember]:
    """Staff, optionally of one organisation and one role."""
    stmt = select(StaffMember)
    if organisation_id is not None:
        stmt = stmt.where(StaffMember.organisation_id == organisation_id)
    if role is not None:
        stmt = stmt.where(StaffMember.role == role)
    return list((await session.exec(stmt.order_by(col(StaffMember.id)))).all())


# built once: building this statement cost more than running it (once per batch and organisation)
_OPEN_CASE_COUNTS = (
    select(MediationCase.mediator_id, func.count())
    .where(MediationCase.organisation_id == bindparam("organisation_id"))
    .where(col(MediationCase.mediator_id).is_not(None))
    .where(col(MediationCase.status).in_(sorted(WORKLOAD_STATUSES)))
    .group_by(col(MediationCase.mediator_id))
)


async def open_case_counts(session: AsyncSession, organisation_id: str) -> dict[str, int]:
    """Open cases per mediator of an organisation (what the session changed so far included)."""
    # Core on the session's connection: the ORM's execute path cost more than the query itself
    await session.flush()
    conn = await session.connection()
    rows = await conn.execute(_OPEN_CASE_COUNTS, {"organisation_id": organisation_id})
    return {m: int(n) for m, n in rows.all() if m is not None}


# --- cases ------------------------------------------------------------------------------------


async def get_case(session: AsyncSession, case_id: str) -> MediationCase | None:
    """One case."""
    return await session.get(MediationCase, case_id)


async def reader_orgs(session: AsyncSession, case_id: str) -> list[str]:
    """Organisations holding a read-only copy of a case."""
    stmt = select(CaseReader.organisation_id).where(CaseReader.case_id == case_id)
    return list((await session.exec(stmt)).all())


def scoped_cases_stmt(p: StaffPrincipal) -> Any:
    """The cases a member of staff may list (shared.scope, as SQL: mirrors access.access_to)."""
    c = MediationCase

    def readers(org: str) -> Any:
        copies = select(CaseReader.case_id).where(CaseReader.organisation_id == org)
        return col(c.case_id).in_(copies)

    cols = ScopeColumns(
        tier=col(c.tier),
        grid_code=col(c.area_code),
        organisation_id=col(c.organisation_id),
        channel=col(c.channel),
        mediator_id=col(c.mediator_id),
        co_channels=col(c.co_channels),
        reader_case_ids=readers,
    )
    return select(MediationCase).where(scope_filter(p, cols))


async def list_cases(
    session: AsyncSession,
    p: StaffPrincipal,
    *,
    status: str | None,
    overdue: bool | None,
    limit: int,
    after: str | None,
) -> list[MediationCase]:
    """A page of the work list, newest activity first, by case id cursor within it."""
    stmt = scoped_cases_stmt(p)
    if status:
        stmt = stmt.where(MediationCase.status == status)
    if overdue is True:
        stmt = stmt.where(
            or_(
                col(MediationCase.sign_for_overdue).is_(True),
                col(MediationCase.mediation_overdue).is_(True),
            )
        )
    if after:
        stmt = stmt.where(col(MediationCase.case_id) > after)
    stmt = stmt.order_by(col(MediationCase.case_id)).limit(limit)
    return list((await session.exec(stmt)).all())


async def notes_of(session: AsyncSession, case_id: str) -> list[CaseNote]:
    """Progress notes of a case, oldest first."""
    stmt = select(CaseNote).where(CaseNote.case_id == case_id).order_by(col(CaseNote.id))
    return list((await session.exec(stmt)).all())


async def agreement_of(session: AsyncSession, case_id: str) -> Agreement | None:
    """The latest agreement of a case."""
    stmt = select(Agreement).where(Agreement.case_id == case_id)
    stmt = stmt.order_by(col(Agreement.agreed_at).desc()).limit(1)
    return (await session.exec(stmt)).first()


async def trail_of(session: AsyncSession, case_id: str) -> list[Any]:
    """This service's trail entries of a case, in order."""
    stmt = select(TrailRow).where(TrailRow.case_id == case_id).order_by(TrailRow.id)
    return list((await session.exec(stmt)).all())


async def cases_to_scan(
    session: AsyncSession,
    now: datetime,
    sign_for_pending: Sequence[str],
    mediation_pending: Sequence[str],
) -> list[str]:
    """Ids of the cases past a deadline they are still pending on and not yet flagged for.

    Only those: an idle scan of a county's open cases reads no rows and opens no transaction
    per case (the scanner checks each candidate again with domain.overdue_kinds).
    """
    c = MediationCase
    at = now.astimezone(UTC)  # SQLite keeps UTC wall times: compare with a UTC one
    late_sign_for = and_(
        col(c.status).in_(list(sign_for_pending)),
        col(c.sign_for_overdue).is_(False),
        col(c.sign_for_due) < at,
    )
    late_mediation = and_(
        col(c.status).in_(list(mediation_pending)),
        col(c.mediation_overdue).is_(False),
        col(c.mediation_due) < at,
    )
    stmt = select(c.case_id).where(or_(late_sign_for, late_mediation)).order_by(col(c.case_id))
    return list((await session.exec(stmt)).all())


async def supervision_exists(session: AsyncSession, case_id: str, kind: str) -> bool:
    """Whether a supervision of this kind was already raised for the case."""
    stmt = select(Supervision.id).where(Supervision.case_id == case_id, Supervision.kind == kind)
    return (await session.exec(stmt)).first() is not None


async def list_supervisions(
    session: AsyncSession, p: StaffPrincipal, limit: int = 200
) -> list[Supervision]:
    """Supervision notices the member of staff may see, newest first."""
    stmt = select(Supervision)
    s = Supervision
    if p.role == "coordinator":
        own = and_(col(s.tier) == p.tier, area_condition(p, col(s.area_code)))
        # a case with no location is the county centre's, whatever its tier (shared.scope)
        stmt = stmt.where(or_(own, col(s.area_code) == "") if p.tier == COUNTY else own)
    elif p.role == "mediator":
        stmt = stmt.where(s.organisation_id == p.organisation)
    elif p.role == "viewer":
        stmt = stmt.where(area_condition(p, col(s.area_code)))
    elif p.role != "admin":
        stmt = stmt.where(False)
    stmt = stmt.order_by(col(s.raised_at).desc(), col(s.id).desc()).limit(limit)
    return list((await session.exec(stmt)).all())
