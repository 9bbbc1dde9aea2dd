"""Request bodies of the mediation actions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class ReasonIn(BaseModel):
    """Why (退单, failure, escalation)."""

    reason: str = Field(min_length=1, max_length=2000)


class NoteIn(BaseModel):
    """A progress note."""

    text: str = Field(min_length=1, max_length=10000)


class AgreementIn(BaseModel):
    """An agreement reached by mediation."""

    terms: str = Field(min_length=1, max_length=20000)
    amount_yuan: int | None = Field(default=None, ge=0, le=10_000_000_000)
    performance_due: datetime | None = None


class TransferIn(BaseModel):
    """Where a failed case goes."""

    target: Literal["litigation", "arbitration"]
    reason: str = Field(min_length=1, max_length=2000)


class AssignIn(BaseModel):
    """A coordinator's manual assignment."""

    organisation_id: str = Field(min_length=1, max_length=64)
    mediator_id: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="协调员指派", max_length=2000)
