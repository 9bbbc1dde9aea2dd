"""Triage tables and the only queries on them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import delivery_tables, json_column, tz


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
