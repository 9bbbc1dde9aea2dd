"""Triage tables and the only queries on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import delivery_tables, json_column, tz


def column_names(model: Any) -> tuple[str, ...]:
    """The column names of a table, in order (what a row queued for Core insert holds)."""
    return tuple(c.name for c in model.__table__.columns)


class TriageBase(SQLModel, registry=registry()):
    """Base of the triage service's own tables."""


class TriageCase(TriageBase, table=True):
    """What triage keeps of a case to route it again (repeats, returns)."""

    __tablename__ = "triage_cases"
    case_id: str = Field(primary_key=True, max_length=64)
    source: str = Field(max_length=10)
    source_ref: str = Field(max_length=128)
    text: str
    category: str | None = None
    grid_code: str | None = Field(default=None, max_length=64)
    parties: list[dict[str, Any]] = json_column()
    sealed_contact: str | None = None
    repeat_count: int = 1
    return_count: int = 0
    excluded_channels: list[str] = json_column()
    attempt: int = 0
    dispute_type: str | None = None
    severity: str | None = None
    channel: str | None = None
    tier: str | None = None
    updated_at: datetime = tz(nullable=False)
    # a coordinator's correction, kept for every later decision (repeats, returns)
    corrected_type: str | None = Field(default=None, max_length=40)
    corrected_severity: str | None = Field(default=None, max_length=20)


CASE_COLUMNS = column_names(TriageCase)


@dataclass
class NewCase:
    """A case first seen in this transaction, as a plain object: its row is inserted by Core
    (Tx.add_rows, one executemany per consumer batch), not by an ORM object per event.

    A later event of the same batch finds it in the batch (handlers.find_case) and changes it;
    `save` copies the changes into the queued row, which is written only at the commit.
    The fields are TriageCase's columns with the same defaults (a unit test keeps them so).
    """

    case_id: str
    source: str
    source_ref: str
    text: str
    updated_at: datetime
    category: str | None = None
    grid_code: str | None = None
    parties: list[dict[str, Any]] = field(default_factory=list)
    sealed_contact: str | None = None
    repeat_count: int = 1
    return_count: int = 0
    excluded_channels: list[str] = field(default_factory=list)
    attempt: int = 0
    dispute_type: str | None = None
    severity: str | None = None
    channel: str | None = None
    tier: str | None = None
    corrected_type: str | None = None
    corrected_severity: str | None = None
    row: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # once queued

    def values(self) -> dict[str, Any]:
        """The row to insert (column → value)."""
        return {name: getattr(self, name) for name in CASE_COLUMNS}


AnyCase = TriageCase | NewCase


class TriageDecisionRow(TriageBase, table=True):
    """Every decision taken, with its reasons and the rules version."""

    __tablename__ = "triage_decisions"
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, max_length=64)
    attempt: int
    rules_version: str = Field(max_length=40)
    decision: dict[str, Any] = json_column()
    decided_at: datetime = tz(nullable=False)


class TriageCaseScope(TriageBase, table=True):
    """Who may read a case's decisions (shared.scope), as the trail tells it."""

    __tablename__ = "triage_case_scopes"
    case_id: str = Field(primary_key=True, max_length=64)
    tier: str | None = Field(default=None, max_length=16)
    grid_code: str | None = Field(default=None, max_length=128)
    organisation_id: str | None = Field(default=None, max_length=128)
    mediator_id: str | None = Field(default=None, max_length=128)
    channel: str | None = Field(default=None, max_length=128)
    co_channels: list[str] = json_column()


class TriageReview(TriageBase, table=True):
    """A decision the rules were unsure of, waiting for the county centre (review queue)."""

    __tablename__ = "triage_reviews"
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, max_length=64)
    attempt: int
    # pending → confirmed | corrected, or superseded by a newer decision on the case
    status: str = Field(default="pending", max_length=20, index=True)
    cues: list[str] = json_column()
    grid_code: str | None = Field(default=None, max_length=64)
    dispute_type: str = Field(max_length=40)
    severity: str = Field(max_length=20)
    channel: str = Field(max_length=20)
    tier: str = Field(max_length=20)
    created_at: datetime = tz(nullable=False)
    confirm_due: datetime = tz(nullable=False)
    resolved_at: datetime | None = tz(nullable=True)
    resolved_by: str | None = Field(default=None, max_length=100)
    note: str | None = None
    # from → to of a correction: type, severity, channel, tier
    correction: dict[str, Any] = json_column()


REVIEW_COLUMNS = tuple(c for c in column_names(TriageReview) if c != "id")  # queued rows: no id
SCOPE_COLUMNS = column_names(TriageCaseScope)


class CausalGateEpoch(TriageBase, table=True):
    """When a consumer's causal gate began (shared.db.CausalGate `epoch`): trail entries
    made before it that the consumer did not record count as applied. Written by the
    migration that began the gate; a database made without migrations has none (all gated)."""

    __tablename__ = "causal_gate_epochs"
    consumer: str = Field(primary_key=True, max_length=64)
    since: datetime = tz(nullable=False)


async def gate_epoch(session: AsyncSession, consumer: str) -> datetime | None:
    """The time a consumer's causal gate began, if recorded."""
    row = await session.get(CausalGateEpoch, consumer)
    if row is None:
        return None
    return row.since if row.since.tzinfo is not None else row.since.replace(tzinfo=UTC)


TABLES = delivery_tables(TriageBase)
metadata = TriageBase.metadata


async def get_case(session: AsyncSession, case_id: str) -> TriageCase | None:
    """The triage view of a case."""
    return await session.get(TriageCase, case_id)


async def decisions_of(session: AsyncSession, case_id: str) -> list[TriageDecisionRow]:
    """All decisions of a case, oldest first."""
    stmt = select(TriageDecisionRow).where(TriageDecisionRow.case_id == case_id)
    stmt = stmt.order_by(TriageDecisionRow.id)  # type: ignore[arg-type]
    return list((await session.exec(stmt)).all())


async def pending_reviews(session: AsyncSession) -> list[tuple[TriageReview, TriageCase]]:
    """Reviews still waiting with their cases, the most urgent first."""
    stmt = (
        select(TriageReview, TriageCase)
        .where(TriageReview.case_id == TriageCase.case_id)
        .where(TriageReview.status == "pending")
        .order_by(TriageReview.confirm_due, TriageReview.id)  # type: ignore[arg-type]
    )
    return [(r, c) for r, c in (await session.exec(stmt)).all()]


async def latest_review(session: AsyncSession, case_id: str) -> TriageReview | None:
    """The newest review of a case (any status)."""
    stmt = select(TriageReview).where(TriageReview.case_id == case_id)
    stmt = stmt.order_by(TriageReview.id.desc()).limit(1)  # type: ignore[union-attr]
    return (await session.exec(stmt)).first()


async def corrected_reviews(
    session: AsyncSession, *, with_confirmed: bool = False
) -> list[tuple[TriageReview, TriageCase]]:
    """Resolved reviews with their cases, oldest first (the labelled examples to export)."""
    statuses = ["corrected", "confirmed"] if with_confirmed else ["corrected"]
    stmt = (
        select(TriageReview, TriageCase)
        .where(TriageReview.case_id == TriageCase.case_id)
        .where(TriageReview.status.in_(statuses))  # type: ignore[attr-defined]
        .order_by(TriageReview.id)  # type: ignore[arg-type]
    )
    return [(r, c) for r, c in (await session.exec(stmt)).all()]


async def pending_reviews_of(session: AsyncSession, case_id: str) -> list[TriageReview]:
    """The case's reviews still waiting."""
    stmt = select(TriageReview).where(TriageReview.case_id == case_id)
    stmt = stmt.where(TriageReview.status == "pending")
    return list((await session.exec(stmt)).all())
