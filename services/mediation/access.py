"""Who may see and do what on a case (pure rules, table-tested).

- mediator: cases of their own organisation (and channel); acts on those assigned to them or
  waiting in the organisation's queue; co-channel organisations read a masked copy.
- coordinator: cases of their tier and the tiers below inside their area (grid prefixes; the
  county centre also sees cases with no location); reassigns and acts on escalations,
  failures, transfers and returns.
- viewer: reads masked, never acts.
- admin: everything.

Organisations and staff: admins manage any; a coordinator only those of their own tier whose
organisation's grid codes all lie inside their area (`management_refusal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from shared.auth import StaffPrincipal
from shared.scope import CaseScope, Sight, in_area, sight, tiers_up_to

__all__ = [
    "Access",
    "CaseScope",
    "access_to",
    "may_perform",
    "management_refusal",
    "assignment_refusal",
    "actor_of",
]

MEDIATOR_ACTIONS = frozenset(
    {"accept", "return", "note", "agree", "fail", "escalate", "transfer", "extend"}
)
COORDINATOR_ACTIONS = frozenset({"reassign", "return", "fail", "escalate", "transfer"})


class Access(IntEnum):
    """How much of a case a member of staff gets."""

    none = 0  # answered as 404: the case does not exist for them
    read_masked = 1
    read_clear = 2
    act = 3


def access_to(p: StaffPrincipal, c: CaseScope) -> Access:
    """How much of the case the principal may see or do (visibility: shared.scope.sight)."""
    seen = sight(p, c)
    if seen is Sight.none:
        return Access.none
    if p.role in ("admin", "coordinator"):
        return Access.act
    if p.role == "mediator":
        own = p.organisation == c.organisation_id and p.channel == c.channel
        if own and c.mediator_id in (None, p.subject):  # theirs, or the organisation's queue
            return Access.act
        return Access.read_masked  # a colleague's case or a co-handler's copy: read, not act
    return Access.read_masked


def may_perform(p: StaffPrincipal, action: str) -> bool:
    """Whether the role may perform an action at all (403 otherwise)."""
    if p.role == "admin":
        return True
    if p.role == "mediator":
        return action in MEDIATOR_ACTIONS
    if p.role == "coordinator":
        return action in COORDINATOR_ACTIONS
    return False


def manages_staff(p: StaffPrincipal) -> bool:
    """Admins and coordinators manage organisations and mediators."""
    return p.role in ("admin", "coordinator")


def management_refusal(
    p: StaffPrincipal, tier: str | None, grid_codes: Sequence[str]
) -> str | None:
    """Why the principal may not manage an organisation (or its staff); None when allowed.

    `tier` and `grid_codes` are the organisation's. An admin may do anything; a coordinator only
    within their own tier and area: every grid code of the organisation under one of their
    prefixes (an organisation without grid codes covers the whole county, so only a coordinator
    without prefixes may manage it).
    """
    if p.role == "admin":
        return None
    if p.role != "coordinator":
        return "only admins and coordinators manage organisations and staff"
    if tier is None or tier != p.tier:
        return f"a coordinator manages only organisations and staff of their own tier ({p.tier})"
    if p.grid_codes and not grid_codes:
        return "an organisation without grid codes covers the whole county: outside your area"
    if not all(in_area(code, p.grid_codes) for code in grid_codes):
        return "the organisation's grid codes reach outside your area"
    return None


def assignment_refusal(
    p: StaffPrincipal,
    tier: str | None,
    grid_codes: Sequence[str],
    case_grid_code: str | None,
) -> str | None:
    """Why the principal may not hand a case to an organisation (its `tier`, `grid_codes`) by
    hand; None when allowed. An admin may; a coordinator only to an organisation they see
    (their tier or one below it, every grid code within their area: DOMAIN.md §7) and that
    works where the case is (a grid prefix of its own covers the case's grid code; one
    without grid codes covers the whole county, the only one for a case without a place).
    Its mediators read the case in clear: handing it elsewhere would open it to them.
    """
    if p.role == "admin":
        return None
    if tier not in tiers_up_to(p.tier):
        return f"a coordinator assigns only to organisations of their tier or below ({p.tier})"
    if p.grid_codes and (not grid_codes or not all(in_area(g, p.grid_codes) for g in grid_codes)):
        return "the organisation works outside your area"
    if grid_codes and not (
        case_grid_code and any(case_grid_code.startswith(g) for g in grid_codes)
    ):
        return "the organisation does not work where the case is"
    return None


def actor_of(p: StaffPrincipal) -> str:
    """How a person appears in the trail."""
    return f"user:{p.subject}"
