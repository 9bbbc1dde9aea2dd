"""Mediation rules: the state machine, tiers, duty shifts, assignment and deadlines (pure code)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from shared.contracts import CaseStatus as S
from shared.contracts import Tier

# ---------------------------------------------------------------------------------------------
# State machine: (action, from status) → to status. Anything not in the table is refused.

TRANSITIONS: dict[tuple[str, str], str] = {
    ("assign", S.triaged): S.assigned,
    ("assign", S.returned): S.assigned,
    ("assign", S.escalated): S.assigned,
    ("reassign", S.assigned): S.assigned,
    ("accept", S.assigned): S.accepted,
    ("return", S.assigned): S.returned,
    ("return", S.accepted): S.returned,
    ("note", S.accepted): S.mediating,
    ("note", S.mediating): S.mediating,
    ("agree", S.mediating): S.agreed,
    ("fail", S.mediating): S.failed,
    ("escalate", S.failed): S.escalated,
    ("transfer", S.failed): S.transferred,
    ("reopen", S.agreed): S.mediating,
    ("reopen", S.follow_up): S.mediating,
    ("reopen", S.reopened): S.mediating,
}

# Why an action is refused, in words a mediator understands (the 409 body).
REFUSALS: dict[str, str] = {
    "assign": "only a triaged, returned or escalated case can be assigned",
    "reassign": "only a case not yet signed for can be reassigned",
    "accept": "only an assigned case can be signed for (签收)",
    "return": "only a case that is assigned or signed for can be returned (退单)",
    "note": "sign for the case before recording progress",
    "agree": "an agreement needs a case under mediation; record progress first",
    "fail": "only a case under mediation can fail",
    "escalate": "record the failure of mediation before escalating",
    "transfer": "record the failure of mediation before transferring",
    "reopen": "only an agreed case can be reopened",
}

OPEN_STATUSES: frozenset[str] = frozenset(
    {S.triaged, S.assigned, S.accepted, S.mediating, S.failed, S.escalated, S.reopened}
)
# Statuses that count against a mediator's workload.
WORKLOAD_STATUSES: frozenset[str] = frozenset({S.assigned, S.accepted, S.mediating, S.failed})
TERMINAL_STATUSES: frozenset[str] = frozenset({S.closed, S.transferred, S.merged})


class TransitionRefused(Exception):
    """The state machine does not allow this action in this status."""

    def __init__(self, action: str, status: str, reason: str | None = None) -> None:
        self.action, self.status = action, status
        self.reason = reason or f"{REFUSALS.get(action, 'not allowed')}; the case is {status}"
        super().__init__(self.reason)


def next_status(action: str, status: str) -> str:
    """The status an action leads to from `status`; TransitionRefused when not allowed."""
    to = TRANSITIONS.get((action, status))
    if to is None:
        raise TransitionRefused(action, status)
    return to


def allowed_actions(status: str) -> list[str]:
    """Actions the state machine allows from a status."""
    return sorted({a for (a, s) in TRANSITIONS if s == status})


# ---------------------------------------------------------------------------------------------
# Tiers

TIERS: tuple[str, ...] = tuple(Tier)  # in order, lowest first


def next_tier(tier: str) -> str:
    """The tier above: grid → town → county; the county has none (TransitionRefused)."""
    if tier not in TIERS:
        raise TransitionRefused("escalate", tier, f"unknown tier {tier}")
    i = TIERS.index(tier)
    if i == len(TIERS) - 1:
        raise TransitionRefused(
            "escalate", S.failed, "the county tier is the highest; transfer the case instead"
        )
    return TIERS[i + 1]


# ---------------------------------------------------------------------------------------------
# Organisations, mediators and assignment


@dataclass(frozen=True)
class OrgFacts:
    """What assignment needs to know of an organisation."""

    id: str
    kind: str  # "mediation" | "coordination"
    channel: str | None
    tier: str
    grid_codes: tuple[str, ...]


@dataclass(frozen=True)
class MediatorFacts:
    """What assignment needs to know of a mediator."""

    id: str
    organisation_id: str
    day_shift: bool
    night_on_call: bool
    active: bool = True


@dataclass(frozen=True)
class DutyHours:
    """The day shift (坐班) in local time; night on-call (值守) covers the rest."""

    timezone: str = "Asia/Shanghai"
    day_start_hour: int = 8
    day_end_hour: int = 18

    def is_day(self, when: datetime) -> bool:
        """Whether `when` falls in the day shift, in local time."""
        local = when.astimezone(ZoneInfo(self.timezone))
        return self.day_start_hour <= local.hour < self.day_end_hour


def on_duty(m: MediatorFacts, when: datetime, hours: DutyHours) -> bool:
    """A day-shift mediator works by day; a night on-call mediator answers outside it."""
    if not m.active:
        return False
    return m.day_shift if hours.is_day(when) else m.night_on_call


def _coverage(org: OrgFacts, grid_code: str | None) -> int:
    """Length of the longest grid prefix of `org` covering `grid_code` (0 = none)."""
    if not grid_code:
        return 0
    return max((len(g) for g in org.grid_codes if grid_code.startswith(g)), default=0)


def pick_organisation(
    orgs: Iterable[OrgFacts], channel: str, tier: str, grid_code: str | None
) -> tuple[OrgFacts | None, str]:
    """Choose the organisation for a case, with the reason.

    Longest grid prefix among the channel's organisations of the tier; then any of them;
    then the channel's county-tier organisation.
    """
    mine = sorted(
        (o for o in orgs if o.kind == "mediation" and o.channel == channel), key=lambda o: o.id
    )
    same_tier = [o for o in mine if o.tier == tier]
    best = max(same_tier, key=lambda o: _coverage(o, grid_code), default=None)
    if best is not None and _coverage(best, grid_code) > 0:
        return best, f"辖区覆盖网格{grid_code}"
    if same_tier:
        return same_tier[0], "无机构覆盖该网格，按渠道和层级指派"
    county = [o for o in mine if o.tier == "county"]
    if county:
        return county[0], f"无{tier}级机构，交县级机构"
    return None, f"没有{channel}渠道的调解机构"


def pick_coordination(
    orgs: Iterable[OrgFacts], tier: str, grid_code: str | None
) -> OrgFacts | None:
    """The coordination centre (矛调中心/综治中心) of a tier covering the area, else any."""
    centres = sorted(
        (o for o in orgs if o.kind == "coordination" and o.tier == tier), key=lambda o: o.id
    )
    best = max(centres, key=lambda o: _coverage(o, grid_code), default=None)
    return best


def pick_mediator(
    mediators: Iterable[MediatorFacts],
    organisation_id: str,
    open_cases: Mapping[str, int],
    when: datetime,
    hours: DutyHours,
) -> MediatorFacts | None:
    """The on-duty mediator of the organisation with the fewest open cases (ties: by id)."""
    duty = [
        m for m in mediators if m.organisation_id == organisation_id and on_duty(m, when, hours)
    ]
    if not duty:
        return None
    return min(duty, key=lambda m: (open_cases.get(m.id, 0), m.id))


def in_area(area: str, prefixes: Sequence[str]) -> bool:
    """Whether an area code lies under any of the prefixes (no prefixes = everywhere)."""
    return not prefixes or any(area.startswith(p) for p in prefixes)


# ---------------------------------------------------------------------------------------------
# Deadlines and supervision (督办)

SIGN_FOR_PENDING: frozenset[str] = frozenset({S.triaged, S.assigned})
MEDIATION_PENDING: frozenset[str] = frozenset(
    {S.triaged, S.assigned, S.accepted, S.mediating, S.failed, S.escalated, S.reopened}
)


@dataclass(frozen=True)
class Deadlines:
    """A case's deadlines and how far it got."""

    status: str
    sign_for_due: datetime | None
    mediation_due: datetime | None


def overdue_kinds(d: Deadlines, now: datetime) -> list[str]:
    """Which deadlines the case has missed at `now`: sign_for_overdue, mediation_overdue."""
    out: list[str] = []
    if d.status in SIGN_FOR_PENDING and d.sign_for_due is not None and now > aware(d.sign_for_due):
        out.append("sign_for_overdue")
    if (
        d.status in MEDIATION_PENDING
        and d.mediation_due is not None
        and now > aware(d.mediation_due)
    ):
        out.append("mediation_overdue")
    return out


EXTENDABLE: frozenset[str] = frozenset({S.accepted, S.mediating})


class Extensible(Protocol):
    """What the extension rule needs to know of a case."""

    channel: str
    status: str
    mediation_due: datetime | None
    extended_at: datetime | None


def extension_refusal(case: Extensible, now: datetime) -> str | None:
    """Why the court's one extension (延期) is refused now, or None when it may be granted."""
    if case.channel != "court":
        return "only court pre-litigation mediation (诉调对接) can be extended"
    if case.extended_at is not None:
        return "the mediation deadline was already extended once"
    if case.status not in EXTENDABLE:
        return (
            f"only a case signed for or under mediation can be extended; the case is {case.status}"
        )
    if case.mediation_due is None or now > aware(case.mediation_due):
        return "the mediation deadline has passed; transfer to litigation instead"
    return None


SUPERVISION_REASONS: dict[str, str] = {
    "sign_for_overdue": "签收超时，督办",
    "mediation_overdue": "调解超期未达成协议，督办",
}


def aware(when: datetime) -> datetime:
    """Treat naive datetimes (SQLite drops the zone) as UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
