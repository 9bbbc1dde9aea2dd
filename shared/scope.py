"""Who may see which case (DOMAIN.md §7): one object-level rule for all four services.

Every route that takes a case id builds the case's `CaseScope` from what its service stores and
asks `sight(principal, scope)`: `none` is answered 404, `masked` shows no personal data, `clear`
shows it. Lists use `scope_filter`, the same rule as SQL, so a list never holds a case that
`sight` would hide.

- admin: everything, in clear (every clear read is audited by the caller).
- coordinator: their tier and every tier below it, inside their grid-code prefixes; the county
  centre (a county coordinator) also sees cases with no location and cases not yet routed.
- viewer: cases inside their area, masked, never in clear.
- a case with no location (no grid code) lies in no area: only the county centre, and staff whose
  area is the whole county (no prefixes), see it — in every service, whatever organisation it is
  assigned to (`case_area`, `sees_unlocated`).
- mediator: cases assigned to their organisation and channel (in clear only those assigned
  to them) and a masked read-only copy where their channel or organisation is a co-handler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from sqlalchemy import String, and_, cast, false, or_, true
from sqlalchemy.sql.elements import ColumnElement

from shared.auth import StaffPrincipal

TIERS: tuple[str, ...] = ("grid", "town", "county")
COUNTY = "county"


class Sight(IntEnum):
    """How much of a case a member of staff sees."""

    none = 0  # answered as 404: the case does not exist for them
    masked = 1
    clear = 2


@dataclass(frozen=True)
class CaseScope:
    """The facts of a case that decide who sees it."""

    tier: str | None = None
    grid_code: str | None = None  # the case's area; None or "" = no location
    organisation_id: str | None = None
    channel: str | None = None
    mediator_id: str | None = None
    co_channels: tuple[str, ...] = ()
    reader_organisations: tuple[str, ...] = ()
    integrator_ids: tuple[str, ...] = field(default=())


def tiers_up_to(tier: str | None) -> tuple[str, ...]:
    """A tier and every tier below it (grid < town < county)."""
    if tier not in TIERS:
        return ()
    return TIERS[: TIERS.index(tier) + 1]


def in_area(area: str | None, prefixes: Sequence[str]) -> bool:
    """Whether an area code lies under any of the prefixes (no prefixes = everywhere)."""
    if not prefixes:
        return True
    return bool(area) and any((area or "").startswith(p) for p in prefixes if p)


def case_area(grid_code: str | None) -> str:
    """The area that decides who sees a case: its own grid code, "" when it has none.

    One rule for the four services (DOMAIN.md §7, "the county centre also sees cases with no
    location"): an unlocated case is in nobody's area but the county centre's. The area of the
    organisation it is assigned to never stands in for it: only mediation knows that area, so a
    town coordinator let in by it would open the case in mediation and get 404 from the ledger,
    the trail and intake; and the organisation's area says where it works, not where the dispute
    is (area statistics and warnings count the case's own place).
    """
    return grid_code or ""


def sees_unlocated(p: StaffPrincipal) -> bool:
    """Whether a case with no location lies inside the principal's area: the county centre's,
    and that of staff with no area prefixes (their area is the whole county)."""
    if p.role == "coordinator" and p.tier == COUNTY:
        return True
    return not p.grid_codes


def in_case_area(p: StaffPrincipal, grid_code: str | None) -> bool:
    """Whether a case's place lies inside the principal's area (the rule of `case_area`)."""
    area = case_area(grid_code)
    return in_area(area, p.grid_codes) if area else sees_unlocated(p)


def coordinator_sees(p: StaffPrincipal, c: CaseScope) -> bool:
    """Own tier and below, inside the area; the county centre also sees unlocated cases."""
    county = p.tier == COUNTY
    # a case not routed yet has no tier: only the county centre oversees it
    tier_ok = county if c.tier is None else c.tier in tiers_up_to(p.tier)
    return tier_ok and in_case_area(p, c.grid_code)


def sight(p: StaffPrincipal, c: CaseScope) -> Sight:
    """How much of the case the principal sees (DOMAIN.md §7)."""
    if p.role == "admin":
        return Sight.clear
    if p.role == "coordinator":
        return Sight.clear if p.tier and coordinator_sees(p, c) else Sight.none
    if p.role == "viewer":
        return Sight.masked if in_case_area(p, c.grid_code) else Sight.none
    if p.role == "mediator":
        if p.organisation and p.organisation == c.organisation_id and p.channel == c.channel:
            return Sight.clear if c.mediator_id == p.subject else Sight.masked
        if p.organisation and p.organisation in c.reader_organisations:
            return Sight.masked
        if p.channel and p.channel in c.co_channels:
            return Sight.masked
        return Sight.none
    return Sight.none


def can_see(p: StaffPrincipal, c: CaseScope) -> bool:
    """Whether the case exists for the principal at all."""
    return sight(p, c) >= Sight.masked


def can_see_clear(p: StaffPrincipal, c: CaseScope) -> bool:
    """Whether the principal may see the case's personal data in clear."""
    return sight(p, c) is Sight.clear


def integrator_sees(integrator_id: str, c: CaseScope) -> bool:
    """An integrator sees only cases it reported itself."""
    return integrator_id in c.integrator_ids


@dataclass(frozen=True)
class ScopeColumns:
    """The columns of a service's case table that hold a CaseScope (None = not stored)."""

    tier: Any
    grid_code: Any
    organisation_id: Any
    channel: Any
    mediator_id: Any = None
    co_channels: Any = None  # a JSON list column
    reader_case_ids: Any = None  # callable(org) -> subquery of case ids with a reader copy


def scope_filter(p: StaffPrincipal, cols: ScopeColumns) -> ColumnElement[bool]:
    """The same rule as `can_see`, as one SQL condition for lists and counts."""
    if p.role == "admin":
        return true()
    if p.role == "viewer":
        return area_condition(p, cols.grid_code)
    if p.role == "coordinator":
        tiers = tiers_up_to(p.tier)
        if not tiers:
            return false()
        county = p.tier == COUNTY
        tier_cond = (
            or_(cols.tier.in_(tiers), cols.tier.is_(None)) if county else (cols.tier.in_(tiers))
        )
        return and_(tier_cond, area_condition(p, cols.grid_code))
    if p.role == "mediator":
        options: list[ColumnElement[bool]] = []
        if p.organisation and p.channel:
            options.append(and_(cols.organisation_id == p.organisation, cols.channel == p.channel))
        if p.organisation and cols.reader_case_ids is not None:
            options.append(cols.reader_case_ids(p.organisation))
        if p.channel and cols.co_channels is not None:
            options.append(
                cast(cols.co_channels, String).contains(f'"{p.channel}"', autoescape=True)
            )
        return or_(*options) if options else false()
    return false()


def area_condition(p: StaffPrincipal, grid: Any) -> ColumnElement[bool]:
    """`in_case_area` as SQL on a column holding a case's grid code (None or "" = unlocated)."""
    return _area(grid, p.grid_codes, unlocated=sees_unlocated(p))


def _area(grid: Any, prefixes: Sequence[str], *, unlocated: bool) -> ColumnElement[bool]:
    """Inside the prefixes; unlocated cases (no grid code) only when `unlocated`."""
    none = or_(grid.is_(None), grid == "")
    located = (
        or_(*(grid.startswith(g, autoescape=True) for g in prefixes if g))
        if any(prefixes)
        else true()
    )
    if unlocated:
        return or_(none, and_(~none, located))
    return and_(~none, located)


SCOPE_DETAIL_FIELDS = ("tier", "organisation_id", "mediator_id", "channel")


def scope_changes(details: Mapping[str, Any]) -> dict[str, Any]:
    """Scope facts a trail entry's details carry (tier, area, organisation, mediator …)."""
    out: dict[str, Any] = {}
    for name in SCOPE_DETAIL_FIELDS:
        value = details.get(name)
        if isinstance(value, str) and value:
            out[name] = value[:128]
    to_tier = details.get("to_tier")
    if isinstance(to_tier, str) and to_tier:
        out["tier"] = to_tier
    grid = details.get("grid_code")  # no trail model has another area field
    if isinstance(grid, str) and grid:
        out["grid_code"] = grid[:128]
    co = details.get("co_channels")
    if isinstance(co, list):
        out["co_channels"] = [str(c)[:40] for c in co]
    return out
