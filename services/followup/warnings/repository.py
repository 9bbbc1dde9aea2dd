"""Early-warning tables: the warnings, and the small counters they are computed from.

The counters (per party hash, per area and day, per employer, per case) are written in the same
transaction as the ledger projection, so no warning ever needs a scan of the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint, bindparam, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Field, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.followup.domain import Scope
from services.followup.repository import FollowupBase, _scope_conditions
from shared.db import json_column, tz
from shared.scope import CaseScope, ScopeColumns


class WarningRow(FollowupBase, table=True):
    """One warning: what it is about, whom it goes to, its cases and facts, where it stands."""

    __tablename__ = "warnings"
    __table_args__ = (
        Index("ix_warnings_status_id", "status", "id"),
        Index("ix_warnings_kind_id", "kind", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)  # cursor order
    warning_id: str = Field(unique=True, max_length=64)
    kind: str = Field(max_length=40)
    key: str = Field(max_length=200)  # "kind:subject"
    subject: str = Field(max_length=200)  # the Kafka key: a case id, area code or hash
    active_key: str | None = Field(default=None, unique=True, max_length=200)  # None once cleared
    status: str = Field(max_length=16)
    tier: str | None = Field(default=None, max_length=16)
    area_code: str | None = Field(default=None, max_length=128)
    channel: str | None = Field(default=None, max_length=40)
    organisation_id: str | None = Field(default=None, max_length=128)
    case_ids: list[str] = json_column()
    facts: dict[str, Any] = json_column()
    raised_at: datetime = tz(nullable=False)
    updated_at: datetime = tz(nullable=False)
    acknowledged_at: datetime | None = tz(nullable=True)
    acknowledged_by: str | None = Field(default=None, max_length=128)
    note: str | None = None
    cleared_at: datetime | None = tz(nullable=True)
    clear_reason: str | None = None


class WarningCaseLink(FollowupBase, table=True):
    """Which warnings name a case: the active ones are re-checked when the case changes, and
    every one (cleared too) is found by GET /v1/warnings?case_id=."""

    __tablename__ = "warning_case_links"
    warning_id: int = Field(primary_key=True)
    case_id: str = Field(primary_key=True, max_length=64, index=True)


class WarningCaseState(FollowupBase, table=True):
    """What the warnings remember of a case beyond the projection; deadlines indexed for scans."""

    __tablename__ = "warning_case_state"
    __table_args__ = (
        Index("ix_warning_case_state_sign_for", "open", "sign_for_due"),
        Index("ix_warning_case_state_mediation", "open", "mediation_due"),
    )
    case_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=40)
    open: bool = True
    received_at: datetime | None = tz(nullable=True)
    sign_for_from: datetime | None = tz(nullable=True)
    sign_for_due: datetime | None = tz(nullable=True)
    mediation_due: datetime | None = tz(nullable=True)
    area_counted: bool = False
    labour_counted: bool = False
    party_checked: bool = False  # the party warnings were checked once the case had a tier


class PartyCase(FollowupBase, table=True):
    """A party (by the keyed hash of a phone or ID number) is a party to a case."""

    __tablename__ = "warning_party_cases"
    __table_args__ = (Index("ix_warning_party_cases_hash_received", "hash", "received_at"),)
    hash: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(primary_key=True, max_length=64, index=True)
    received_at: datetime = tz(nullable=False)
    settled_at: datetime | None = tz(nullable=True)
    settled_tier: str | None = Field(default=None, max_length=16)
    counted: bool = True  # False once the case was merged away


class AreaDay(FollowupBase, table=True):
    """New cases per area (town and village level) and received day (Asia/Shanghai)."""

    __tablename__ = "warning_area_days"
    area: str = Field(primary_key=True, max_length=128)
    day: date = Field(primary_key=True)
    cases: int = 0


class AreaCase(FollowupBase, table=True):
    """A case counted in an area's day (so a rising-area warning can name its cases)."""

    __tablename__ = "warning_area_cases"
    __table_args__ = (Index("ix_warning_area_cases_area_day", "area", "day"),)
    area: str = Field(primary_key=True, max_length=128)
    case_id: str = Field(primary_key=True, max_length=64)
    day: date


class EmployerCase(FollowupBase, table=True):
    """A labour case against an employer (an organisation party)."""

    __tablename__ = "warning_employer_cases"
    __table_args__ = (UniqueConstraint("employer_key", "case_id", name="uq_warning_employer_case"),)
    id: int | None = Field(default=None, primary_key=True)
    employer_key: str = Field(max_length=64, index=True)
    employer: str = Field(max_length=200)
    case_id: str = Field(max_length=64, index=True)
    received_at: datetime = tz(nullable=False)
    open: bool = True


# ---------------------------------------------------------------------------------------------
# Writes

_WARNINGS = WarningRow.__table__  # type: ignore[attr-defined]
_WARNING_COLUMNS = [c.name for c in _WARNINGS.columns if c.name != "id"]
# built once (the values are the execution's parameters): a statement per raise cost more
# to build than to run
_INSERT_ACTIVE = {
    name: insert(_WARNINGS)
    .on_conflict_do_nothing(index_elements=[_WARNINGS.c.active_key])
    .returning(_WARNINGS.c.id)
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


async def insert_active(session: AsyncSession, w: WarningRow) -> bool:
    """Insert a new active warning unless its key is active already (False then): another
    instance raising the same warning at once makes this insert wait for it and then yield,
    instead of failing the batch on warnings_active_key_key. The row joins the session as
    stored, with its id; nothing else of the session is flushed (its changes to other warnings
    are written at commit, in id order)."""
    values = {name: getattr(w, name) for name in _WARNING_COLUMNS}
    conn = await session.connection()
    got = (await conn.execute(_INSERT_ACTIVE[conn.dialect.name], values)).scalar_one_or_none()
    if got is None:
        return False
    w.id = got
    make_transient_to_detached(w)
    session.add(w)
    return True


# ---------------------------------------------------------------------------------------------
# Reads


async def active(session: AsyncSession, key: str) -> WarningRow | None:
    """The warning about a subject that has not been cleared."""
    return (await session.exec(select(WarningRow).where(WarningRow.active_key == key))).first()


async def active_naming(session: AsyncSession, case_id: str) -> list[WarningRow]:
    """Active warnings that name a case."""
    stmt = (
        select(WarningRow)
        .join(WarningCaseLink, col(WarningCaseLink.warning_id) == col(WarningRow.id))
        .where(WarningCaseLink.case_id == case_id, col(WarningRow.active_key).is_not(None))
        .order_by(col(WarningRow.id))
    )
    return list((await session.exec(stmt)).all())


_IDS: Any = bindparam("ids", expanding=True)
_LINKS_OF_CASES = (
    select(col(WarningCaseLink.case_id), col(WarningCaseLink.warning_id))
    .join(WarningRow, col(WarningCaseLink.warning_id) == col(WarningRow.id))
    .where(col(WarningCaseLink.case_id).in_(_IDS), col(WarningRow.active_key).is_not(None))
)
# built once, per kinds left out (their keys are the execution's parameters)
_LINKS_OF_CASES_BUT = _LINKS_OF_CASES.where(
    col(WarningRow.kind).not_in(bindparam("but", expanding=True))
)
_WARNINGS_OF_IDS = select(WarningRow).where(col(WarningRow.id).in_(_IDS))


async def active_naming_all(
    session: AsyncSession, case_ids: Sequence[str], but: Sequence[str] = ()
) -> dict[str, list[WarningRow]]:
    """Active warnings naming each of some cases (every case id present, [] for none), those
    of the kinds in `but` left out.

    The links first, then each warning once: a town's warning naming a hundred of the cases
    would otherwise come back a hundred times, its cases' JSON decoded each time."""
    out: dict[str, list[WarningRow]] = {c: [] for c in case_ids}
    pairs: list[tuple[str, int]] = []
    for i in range(0, len(case_ids), 500):
        params: dict[str, Any] = {"ids": list(case_ids[i : i + 500])}
        if but:
            params["but"] = list(but)
        stmt = _LINKS_OF_CASES_BUT if but else _LINKS_OF_CASES
        pairs += (await session.exec(stmt, params=params)).all()
    ids = sorted({w for _, w in pairs})
    rows: dict[int, WarningRow] = {}
    for i in range(0, len(ids), 500):
        got = await session.exec(_WARNINGS_OF_IDS, params={"ids": ids[i : i + 500]})
        rows.update((w.id or 0, w) for w in got.all())
    for case_id, warning_id in sorted(pairs, key=lambda p: p[1]):  # each case's in id order
        out[case_id].append(rows[warning_id])
    return out


async def all_active(session: AsyncSession, kinds: list[str]) -> list[WarningRow]:
    """Every active warning of some kinds (the scanner re-checks them at its clock)."""
    stmt = select(WarningRow).where(
        col(WarningRow.active_key).is_not(None), col(WarningRow.kind).in_(kinds)
    )
    return list((await session.exec(stmt.order_by(col(WarningRow.id)))).all())


async def area_count(session: AsyncSession, area: str, first: date, last: date) -> int:
    """New cases of an area over a range of days (at most a few dozen counter rows)."""
    stmt = select(func.coalesce(func.sum(AreaDay.cases), 0)).where(
        AreaDay.area == area, col(AreaDay.day) >= first, col(AreaDay.day) <= last
    )
    return int((await session.exec(stmt)).one())


async def area_cases(session: AsyncSession, area: str, first: date, limit: int = 50) -> list[str]:
    """The newest cases of an area since a day."""
    return [c for _, c in await area_cases_by_day(session, area, first, limit)]


async def area_cases_by_day(
    session: AsyncSession, area: str, first: date, limit: int = 50
) -> list[tuple[date, str]]:
    """(day, case id) of the newest cases of an area since a day, newest day first."""
    stmt = (
        select(col(AreaCase.day), col(AreaCase.case_id))
        .where(AreaCase.area == area, col(AreaCase.day) >= first)
        .order_by(col(AreaCase.day).desc(), col(AreaCase.case_id))
        .limit(limit)
    )
    return [(d, c) for d, c in (await session.exec(stmt)).all()]


async def party_cases(session: AsyncSession, hashes: list[str]) -> list[PartyCase]:
    """Every counted case of some party hashes."""
    if not hashes:
        return []
    stmt = select(PartyCase).where(col(PartyCase.hash).in_(hashes), col(PartyCase.counted))
    return list((await session.exec(stmt.order_by(col(PartyCase.received_at)))).all())


async def party_rows_of(session: AsyncSession, case_id: str) -> list[PartyCase]:
    """The party rows of one case."""
    return list((await session.exec(select(PartyCase).where(PartyCase.case_id == case_id))).all())


async def employer_rows_of(session: AsyncSession, case_id: str) -> list[EmployerCase]:
    """The employer rows of one case."""
    stmt = select(EmployerCase).where(EmployerCase.case_id == case_id)
    return list((await session.exec(stmt)).all())


async def open_employer_cases(
    session: AsyncSession, employer_key: str, since: datetime
) -> list[EmployerCase]:
    """Open labour cases against an employer received since a time."""
    stmt = select(EmployerCase).where(
        EmployerCase.employer_key == employer_key,
        col(EmployerCase.open),
        col(EmployerCase.received_at) >= since,
    )
    return list((await session.exec(stmt.order_by(col(EmployerCase.received_at)))).all())


async def rows_of(session: AsyncSession, model: Any, case_ids: Sequence[str]) -> list[Any]:
    """The rows of a table keyed by case id for these cases, read at once (500 ids a query):
    while the caller holds them, a `get` of one from the session is no query (the identity
    map keeps only what is referenced)."""
    ids = sorted(set(case_ids))
    key = col(model.case_id)
    out: list[Any] = []
    for i in range(0, len(ids), 500):
        out.extend((await session.exec(select(model).where(key.in_(ids[i : i + 500])))).all())
    return out


async def deadline_candidates(
    session: AsyncSession, now: datetime, sign_for_until: datetime, mediation_until: datetime
) -> list[WarningCaseState]:
    """Open cases with a deadline ahead of `now` inside the look-ahead (index range scans)."""
    s = WarningCaseState
    out: dict[str, WarningCaseState] = {}
    for due, until in ((s.sign_for_due, sign_for_until), (s.mediation_due, mediation_until)):
        stmt = select(s).where(col(s.open), col(due) > now, col(due) <= until)
        for row in (await session.exec(stmt)).all():
            out[row.case_id] = row
    return list(out.values())


WARNING_SCOPE = ScopeColumns(
    tier=col(WarningRow.tier),
    grid_code=col(WarningRow.area_code),
    organisation_id=col(WarningRow.organisation_id),
    channel=col(WarningRow.channel),
)


def warning_conditions(
    scope: Scope,
    kind: str | None,
    area: str | None,
    tier: str | None,
    status: str | None,
    case_id: str | None = None,
) -> list[Any]:
    """SQL conditions for a list of warnings inside a member of staff's scope."""
    w = WarningRow
    out = _scope_conditions(scope, WARNING_SCOPE)
    if kind is not None:
        out.append(col(w.kind) == kind)
    if tier is not None:
        out.append(col(w.tier) == tier)
    if status is not None:
        out.append(col(w.status) == status)
    if area:
        out.append(col(w.area_code).startswith(area, autoescape=True))
    if case_id is not None:
        naming = select(WarningCaseLink.warning_id).where(WarningCaseLink.case_id == case_id)
        out.append(col(w.id).in_(naming))
    return out


async def list_warnings(
    session: AsyncSession, conditions: list[Any], before: int | None, limit: int
) -> list[WarningRow]:
    """A page of warnings, newest first (keyset on id)."""
    stmt = select(WarningRow).where(*conditions)
    if before is not None:
        stmt = stmt.where(col(WarningRow.id) < before)
    stmt = stmt.order_by(col(WarningRow.id).desc()).limit(limit)
    return list((await session.exec(stmt)).all())


async def by_id(session: AsyncSession, warning_id: str) -> WarningRow | None:
    """One warning by its public id."""
    stmt = select(WarningRow).where(WarningRow.warning_id == warning_id)
    return (await session.exec(stmt)).first()


def scope_facts(w: WarningRow) -> CaseScope:
    """Who sees a warning: its tier, area, channel and organisation, as a case's would."""
    return CaseScope(
        tier=w.tier, grid_code=w.area_code, organisation_id=w.organisation_id, channel=w.channel
    )
