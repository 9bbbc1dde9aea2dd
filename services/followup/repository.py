"""Follow-up tables (ledger entries, the case projection, follow-ups, visits)."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint, and_, case, func
from sqlalchemy import select as sa_select
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.followup.domain import CaseFilters, Scope, as_utc
from services.followup.ledger import (
    SETTLED,
    TERMINAL,
    UNSETTLED,
    CaseProjection,
    EntryContent,
    StoredEntry,
)
from shared.db import delivery_tables, json_column, tz
from shared.scope import CaseScope, ScopeColumns, scope_filter


class FollowupBase(SQLModel, registry=registry()):
    """Base of the follow-up service's own tables."""


class LedgerEntry(FollowupBase, table=True):
    """One trail entry of any service, chained to the one before it (append-only)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("case_id", "seq", name="uq_ledger_entries_case_seq"),)
    id: int | None = Field(default=None, primary_key=True)  # the ledger's global sequence
    case_id: str = Field(max_length=64)
    seq: int
    event_id: str = Field(unique=True, max_length=64)
    producer: str = Field(max_length=40)
    at: datetime = tz(nullable=False)
    actor: str = Field(max_length=100)
    actor_role: str = Field(max_length=40)
    action: str = Field(max_length=40)
    from_status: str | None = Field(default=None, max_length=40)
    to_status: str = Field(max_length=40)
    reason: str = ""
    details: dict[str, Any] = json_column()
    follows: list[str] = json_column(nullable=True)  # causes (event ids), hashed with the entry
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    recorded_at: datetime = tz(nullable=False)

    def stored(self) -> StoredEntry:
        """The entry as the chain check sees it."""
        return StoredEntry(
            content=EntryContent(
                case_id=self.case_id,
                seq=self.seq,
                at=self.at,
                actor=self.actor,
                actor_role=self.actor_role,
                action=self.action,
                from_status=self.from_status,
                to_status=self.to_status,
                reason=self.reason,
                details=self.details,
                follows=tuple(self.follows or ()),
            ),
            prev_hash=self.prev_hash,
            hash=self.hash,
            event_id=self.event_id,
        )


_FILTERED = ("status", "channel", "tier", "severity", "dispute_type", "source", "overdue")


class LedgerCase(FollowupBase, table=True):
    """The case projection dashboards read: one row per case, as its trail says."""

    __tablename__ = "ledger_cases"
    __table_args__ = (
        *(Index(f"ix_ledger_cases_{c}_version", c, "version") for c in _FILTERED),
        Index("ix_ledger_cases_scope_mediator", "channel", "organisation_id", "version"),
        Index("ix_ledger_cases_updated_at", "updated_at", "version"),
        # covers GET /v1/stats: its one GROUP BY reads this index alone, never the table
        Index(
            "ix_ledger_cases_stats",
            "status",
            "channel",
            "tier",
            "dispute_type",
            "source",
            "first_tier",
            "overdue",
            "agreed_at",
            "mediation_due",
            "satisfaction",
        ),
    )
    case_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(unique=True)  # ledger sequence of the newest entry: cursor and ETag
    entries: int = 0
    last_hash: str = Field(max_length=64)
    status: str = Field(max_length=40)
    source: str | None = Field(default=None, max_length=16)
    source_ref: str | None = Field(default=None, max_length=128)
    dispute_type: str | None = Field(default=None, max_length=40)
    severity: str | None = Field(default=None, max_length=16)
    channel: str | None = Field(default=None, max_length=40)
    co_channels: list[str] = json_column()
    tier: str | None = Field(default=None, max_length=16)
    first_tier: str | None = Field(default=None, max_length=16)
    organisation_id: str | None = Field(default=None, max_length=128)
    mediator_id: str | None = Field(default=None, max_length=128)
    grid_code: str | None = Field(default=None, max_length=128)
    parties: list[dict[str, Any]] = json_column()
    sign_for_due: datetime | None = tz(nullable=True)
    mediation_due: datetime | None = tz(nullable=True)
    sign_for_overdue: bool = False
    mediation_overdue: bool = False
    overdue: bool = False
    created_at: datetime | None = tz(nullable=True)
    updated_at: datetime | None = tz(nullable=True)
    received_at: datetime | None = tz(nullable=True)
    agreed_at: datetime | None = tz(nullable=True)
    closed_at: datetime | None = tz(nullable=True)
    return_count: int = 0
    escalation_count: int = 0
    reopen_count: int = 0
    satisfaction: int | None = None

    def projection(self) -> CaseProjection:
        """The row as the pure projection rules see it."""
        values = {f.name: getattr(self, f.name) for f in fields(CaseProjection)}
        for name, value in values.items():
            if isinstance(value, datetime):
                values[name] = as_utc(value)
        return CaseProjection(**values)

    def take(self, p: CaseProjection) -> None:
        """Copy a projection into the row."""
        for f in fields(CaseProjection):
            setattr(self, f.name, getattr(p, f.name))


class FollowupCase(FollowupBase, table=True):
    """A case in follow-up: the agreement being checked and how many visits found it kept."""

    __tablename__ = "followup_cases"
    case_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=40)  # follow_up | reopened | closed
    agreement_id: str = Field(max_length=64)
    round: int = 1  # one round per agreement (a reopened case may agree again)
    honoured_visits: int = 0
    agreed_at: datetime = tz(nullable=False)
    channel: str = Field(max_length=40)
    tier: str = Field(max_length=16)
    organisation_id: str | None = Field(default=None, max_length=128)
    mediator_id: str | None = Field(default=None, max_length=128)
    updated_at: datetime = tz(nullable=False)


class Visit(FollowupBase, table=True):
    """A scheduled or recorded visit (回访); the note is encrypted at rest."""

    __tablename__ = "visits"
    __table_args__ = (Index("ix_visits_state_due", "state", "due_at"),)
    id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    round: int
    number: int
    agreement_id: str = Field(max_length=64)
    state: str = Field(max_length=16)  # scheduled | done | cancelled
    due_at: datetime | None = tz(nullable=True)
    method: str | None = Field(default=None, max_length=16)
    honoured: bool | None = None
    satisfaction: int | None = None
    note_sealed: str | None = None
    recorded_at: datetime | None = tz(nullable=True)
    recorded_by: str | None = Field(default=None, max_length=128)


def followup_scope_facts(fc: FollowupCase | None, ledger: LedgerCase | None) -> CaseScope:
    """Who sees a case in follow-up (shared.scope facts).

    The ledger's projection wins where it knows a value, so the dashboards and the visit
    routes agree; the agreement fills what the ledger has not heard yet.
    """
    if ledger is None:
        assert fc is not None
        return CaseScope(
            tier=fc.tier,
            organisation_id=fc.organisation_id,
            channel=fc.channel,
            mediator_id=fc.mediator_id,
        )
    return CaseScope(
        tier=ledger.tier or (fc.tier if fc else None),
        grid_code=ledger.grid_code,
        organisation_id=ledger.organisation_id or (fc.organisation_id if fc else None),
        channel=ledger.channel or (fc.channel if fc else None),
        mediator_id=ledger.mediator_id or (fc.mediator_id if fc else None),
        co_channels=tuple(ledger.co_channels or ()),
    )


TABLES = delivery_tables(FollowupBase)
metadata = FollowupBase.metadata


# ---------------------------------------------------------------------------------------------
# Queries


def _scope_conditions(p: Scope, cols: ScopeColumns) -> list[Any]:
    return [scope_filter(p, cols)]


LEDGER_SCOPE = ScopeColumns(
    tier=col(LedgerCase.tier),
    grid_code=col(LedgerCase.grid_code),
    organisation_id=col(LedgerCase.organisation_id),
    channel=col(LedgerCase.channel),
    mediator_id=col(LedgerCase.mediator_id),
    co_channels=col(LedgerCase.co_channels),
)


def case_conditions(filters: CaseFilters, scope: Scope) -> list[Any]:
    """SQL conditions for a dashboard's filters inside a member of staff's scope."""
    c = LedgerCase
    out = _scope_conditions(scope, LEDGER_SCOPE)
    for name in ("status", "channel", "tier", "severity", "dispute_type", "source"):
        value = getattr(filters, name)
        if value is not None:
            out.append(getattr(c, name) == value)
    if filters.overdue is not None:
        out.append(col(c.overdue) == filters.overdue)
    if filters.since is not None:
        out.append(col(c.updated_at) >= as_utc(filters.since))
    return out


async def get_case(session: AsyncSession, case_id: str, scope: Scope) -> LedgerCase | None:
    """One case, only if it lies inside the scope."""
    stmt = select(LedgerCase).where(
        LedgerCase.case_id == case_id, *case_conditions(CaseFilters(), scope)
    )
    return (await session.exec(stmt)).first()


def list_cases_query(
    filters: CaseFilters, scope: Scope, after: int | None, limit: int, descending: bool
) -> Any:
    """The statement behind a page of cases (keyset on `version`)."""
    version = col(LedgerCase.version)
    stmt = select(LedgerCase).where(*case_conditions(filters, scope))
    if after is not None:
        stmt = stmt.where(version < after if descending else version > after)
    return stmt.order_by(version.desc() if descending else version).limit(limit)


async def list_cases(
    session: AsyncSession,
    filters: CaseFilters,
    scope: Scope,
    after: int | None,
    limit: int,
    descending: bool,
) -> list[LedgerCase]:
    """A page of cases in ledger order."""
    stmt = list_cases_query(filters, scope, after, limit, descending)
    return list((await session.exec(stmt)).all())


async def entries_of(session: AsyncSession, case_id: str) -> list[LedgerEntry]:
    """Every ledger entry of a case, in chain order."""
    stmt = select(LedgerEntry).where(LedgerEntry.case_id == case_id)
    return list((await session.exec(stmt.order_by(col(LedgerEntry.seq)))).all())


def _sum(cond: Any) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


STAT_DIMENSIONS = ("status", "channel", "tier", "dispute_type", "source")


def stats_query(filters: CaseFilters, scope: Scope) -> Any:
    """One GROUP BY over the five dimensions with the sums the stats need."""
    c = LedgerCase
    dims = [col(getattr(c, d)) for d in STAT_DIMENSIONS]
    agreed, due = col(c.agreed_at), col(c.mediation_due)
    return (
        sa_select(
            *dims,
            func.count(),
            _sum(and_(agreed.is_not(None), due.is_not(None))),
            _sum(and_(agreed.is_not(None), due.is_not(None), agreed <= due)),
            func.coalesce(func.sum(c.satisfaction), 0),
            func.count(col(c.satisfaction)),
            _sum(col(c.tier) == col(c.first_tier)),
            _sum(col(c.overdue).is_(True)),
        )
        .where(*case_conditions(filters, scope))
        .group_by(*dims)
    )


async def stats(session: AsyncSession, filters: CaseFilters, scope: Scope) -> dict[str, Any]:
    """Counts and rates over the scoped, filtered ledger in one pass of the database.

    One GROUP BY over the five dimensions returns at most a few thousand groups (the product
    of the vocabularies), whatever the number of cases; the roll-up adds those groups up.
    """
    stmt = stats_query(filters, scope)
    by: dict[str, dict[str, int]] = {f"by_{d}": {} for d in STAT_DIMENSIONS}
    t = dict.fromkeys(
        (
            "total",
            "settled",
            "unsettled",
            "agreed_with_deadline",
            "agreed_on_time",
            "satisfaction_sum",
            "satisfaction_count",
            "settled_at_first_tier",
            "backlog",
            "overdue",
        ),
        0,
    )
    for row in (await session.exec(stmt)).all():
        keys, (n, with_due, on_time, sat_sum, sat_n, first, overdue) = row[:5], row[5:]
        for dim, key in zip(STAT_DIMENSIONS, keys, strict=True):
            bucket = by[f"by_{dim}"]
            name = key if key is not None else "unknown"
            bucket[name] = bucket.get(name, 0) + int(n)
        status = keys[0]
        t["total"] += int(n)
        t["agreed_with_deadline"] += int(with_due)
        t["agreed_on_time"] += int(on_time)
        t["satisfaction_sum"] += int(sat_sum)
        t["satisfaction_count"] += int(sat_n)
        if status in SETTLED:
            t["settled"] += int(n)
            t["settled_at_first_tier"] += int(first)
        elif status in UNSETTLED:
            t["unsettled"] += int(n)
        if status not in TERMINAL:
            t["backlog"] += int(n)
            t["overdue"] += int(overdue)
    return {**by, "totals": t}


async def visits_of(session: AsyncSession, case_id: str) -> list[Visit]:
    """Every visit of a case, scheduled or recorded, oldest round first."""
    stmt = select(Visit).where(Visit.case_id == case_id)
    return list((await session.exec(stmt.order_by(col(Visit.round), col(Visit.number)))).all())


async def open_visits(session: AsyncSession, case_id: str, round_: int) -> list[Visit]:
    """The visits of the current round not yet recorded, earliest due first."""
    stmt = select(Visit).where(
        Visit.case_id == case_id, Visit.round == round_, Visit.state == "scheduled"
    )
    return list((await session.exec(stmt.order_by(col(Visit.number)))).all())


async def due_visits(
    session: AsyncSession, by: datetime, scope: Scope, limit: int
) -> list[tuple[Visit, FollowupCase, str | None]]:
    """Scheduled visits due by a time inside the scope, earliest first (a work list)."""
    f = FollowupCase
    stmt = (
        select(Visit, f, LedgerCase.grid_code)
        .join(f, col(f.case_id) == col(Visit.case_id))
        .outerjoin(LedgerCase, col(LedgerCase.case_id) == col(Visit.case_id))
        .where(
            Visit.state == "scheduled",
            col(Visit.due_at) <= as_utc(by),
            f.status == "follow_up",
            *_scope_conditions(
                scope,
                ScopeColumns(
                    tier=func.coalesce(LedgerCase.tier, f.tier),
                    grid_code=col(LedgerCase.grid_code),
                    organisation_id=func.coalesce(LedgerCase.organisation_id, f.organisation_id),
                    channel=func.coalesce(LedgerCase.channel, f.channel),
                    mediator_id=func.coalesce(LedgerCase.mediator_id, f.mediator_id),
                    co_channels=col(LedgerCase.co_channels),
                ),
            ),
        )
        .order_by(col(Visit.due_at), col(Visit.case_id))
        .limit(limit)
    )
    return [(v, fc, g) for v, fc, g in (await session.exec(stmt)).all()]
