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
from shared.scope import CaseScope, can_see, can_see_clear


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


# The caller is the scope: shared.scope decides what a member of staff sees (DOMAIN.md §7).
Scope = StaffPrincipal


def scope_of(p: StaffPrincipal) -> Scope:
    """The slice of the ledger a member of staff may read: decided by shared.scope."""
    return p


def in_scope(p: Scope, case: CaseScope) -> bool:
    """Whether one case lies inside the caller's scope (the SQL filters say the same)."""
    return can_see(p, case)


def may_record_visits(p: StaffPrincipal, case: CaseScope | None = None) -> bool:
    """Admins, coordinators over the case, and the mediator it is assigned to; never viewers."""
    if p.role not in ("mediator", "coordinator", "admin"):
        return False
    return case is None or can_see_clear(p, case)


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
