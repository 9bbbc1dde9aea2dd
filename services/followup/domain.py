"""Pure follow-up rules: who sees what, visits, dashboard filters.

No framework imports here: everything is plain data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.auth import StaffPrincipal
from shared.contracts import CaseStatus as S


def as_utc(value: datetime | None) -> datetime | None:
    """Timezone-aware UTC (SQLite hands back naive UTC values)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime (naive values are taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_time(value: Any) -> datetime | None:
    """A datetime from an ISO string or datetime; None when absent or unreadable."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str) and value:
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


# ---------------------------------------------------------------------------------------------
# Who sees what


@dataclass(frozen=True)
class Scope:
    """The slice of the ledger a member of staff may read, as plain conditions.

    `nothing` means no case at all; None fields mean "no condition".
    """

    nothing: bool = False
    channel: str | None = None
    organisation_id: str | None = None
    tier: str | None = None
    grid_prefixes: tuple[str, ...] = ()


def scope_of(p: StaffPrincipal) -> Scope:
    """Mediators: own channel (and organisation). Coordinators: own tier and area.

    Viewers and admins: everything (viewers read only; the ledger holds no personal data).
    """
    if p.role in ("admin", "viewer"):
        return Scope()
    if p.role == "mediator":
        if not p.channel:
            return Scope(nothing=True)
        return Scope(channel=p.channel, organisation_id=p.organisation or None)
    if p.role == "coordinator":
        if not p.tier:
            return Scope(nothing=True)
        return Scope(tier=p.tier, grid_prefixes=tuple(g for g in p.grid_codes if g))
    return Scope(nothing=True)


def in_scope(
    s: Scope,
    channel: str | None,
    organisation_id: str | None,
    tier: str | None,
    grid_code: str | None,
) -> bool:
    """Whether one case lies inside a scope (the SQL filters say the same)."""
    if s.nothing:
        return False
    if s.channel is not None and channel != s.channel:
        return False
    if s.organisation_id is not None and organisation_id != s.organisation_id:
        return False
    if s.tier is not None and tier != s.tier:
        return False
    return not s.grid_prefixes or (
        grid_code is not None and any(grid_code.startswith(g) for g in s.grid_prefixes)
    )


def may_record_visits(p: StaffPrincipal) -> bool:
    """Mediators, coordinators and admins record visits; viewers only read."""
    return p.role in ("mediator", "coordinator", "admin")


# ---------------------------------------------------------------------------------------------
# Visits (回访)

VISIT_METHODS = ("visit", "phone", "wechat")
HONOURED_VISITS_TO_CLOSE = 2


def visit_schedule(agreed_at: datetime, offsets_days: Sequence[int]) -> list[datetime]:
    """When the visits after an agreement are due."""
    at = as_utc(agreed_at)
    assert at is not None
    return [at + timedelta(days=d) for d in sorted(offsets_days)]


@dataclass(frozen=True)
class VisitOutcome:
    """What one recorded visit does to the case."""

    to_status: str
    action: str
    reason: str
    closes: bool = False
    reopens: bool = False


def visit_outcome(honoured: bool, honoured_before: int) -> VisitOutcome:
    """Not honoured reopens; the second honoured visit closes; otherwise stay in follow-up."""
    if not honoured:
        return VisitOutcome(
            S.reopened, "reopen", "visit found the agreement not honoured", reopens=True
        )
    if honoured_before + 1 >= HONOURED_VISITS_TO_CLOSE:
        return VisitOutcome(
            S.closed,
            "close",
            f"visit {honoured_before + 1} found the agreement honoured",
            closes=True,
        )
    return VisitOutcome(S.follow_up, "visit", "visit found the agreement honoured")


def rate(part: int, whole: int) -> float | None:
    """A share rounded to four places; None when there is nothing to divide by."""
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class CaseFilters:
    """What a dashboard may filter the ledger by (None = no condition)."""

    status: str | None = None
    channel: str | None = None
    tier: str | None = None
    severity: str | None = None
    dispute_type: str | None = None
    source: str | None = None
    overdue: bool | None = None
    since: datetime | None = None  # updated at or after
