"""Admin routes: organisations, mediators (and other staff), tokens and a manual scan."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from services.mediation.access import management_refusal, manages_staff
from services.mediation.assignment import Context
from services.mediation.domain import TIERS
from services.mediation.repository import Organisation, StaffMember, organisations, staff_of
from services.mediation.schemas import (
    OrganisationList,
    OrganisationView,
    ScanResult,
    StaffList,
    StaffToken,
    StaffView,
)
from services.mediation.staff import principal_for, principal_of, token_for
from services.mediation.supervision import scan_overdue
from shared.auth import StaffPrincipal
from shared.db import Tx
from shared.errors import Forbidden, Invalid, NotFound
from shared.events import utcnow
from shared.staff_status import StaffChanged
from shared.web import CurrentStaff

router = APIRouter(prefix="/v1/admin", tags=["admin"])

Tier = Literal["grid", "town", "county"]
GridCode = Annotated[str, Field(min_length=2, max_length=64, pattern=r"^[0-9A-Za-z]+$")]


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(_ctx)]


def _require_manager(p: StaffPrincipal) -> None:
    if not manages_staff(p):
        raise Forbidden("only admins and coordinators manage organisations and staff")


def _require_scope(p: StaffPrincipal, org: Organisation | None) -> None:
    """403 unless the principal may manage this organisation and its staff."""
    if org is None:
        reason = (
            None if p.role == "admin" else "a coordinator manages only staff of an organisation"
        )
    else:
        reason = management_refusal(p, org.tier, org.grid_codes)
    if reason is not None:
        raise Forbidden(reason)


def _require_admin(p: StaffPrincipal) -> None:
    if p.role != "admin":
        raise Forbidden("admins only")


class OrganisationIn(BaseModel):
    """A mediation organisation of a channel and tier, or a coordination centre."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_.-]+$")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["mediation", "coordination"] = "mediation"
    channel: str | None = Field(default=None, max_length=20)
    tier: Tier
    grid_codes: list[GridCode] = Field(default_factory=list, max_length=500)
    active: bool = True


class StaffIn(BaseModel):
    """A mediator (with duty shifts), coordinator or viewer."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_.-]+$")
    name: str = Field(min_length=1, max_length=100)
    role: Literal["mediator", "coordinator", "viewer"] = "mediator"
    organisation_id: str | None = Field(default=None, max_length=64)
    day_shift: bool = True
    night_on_call: bool = False
    active: bool = True


class StaffPatch(BaseModel):
    """Change duty shifts or deactivate."""

    day_shift: bool | None = None
    night_on_call: bool | None = None
    active: bool | None = None
    organisation_id: str | None = Field(default=None, max_length=64)


def org_body(o: Organisation) -> dict[str, Any]:
    """An organisation as the API shows it."""
    return {
        "id": o.id,
        "name": o.name,
        "kind": o.kind,
        "channel": o.channel,
        "tier": o.tier,
        "grid_codes": o.grid_codes,
        "active": o.active,
    }


def staff_body(m: StaffMember) -> dict[str, Any]:
    """A member of staff as the API shows it."""
    return {
        "id": m.id,
        "name": m.name,
        "role": m.role,
        "channel": m.channel,
        "tier": m.tier,
        "organisation_id": m.organisation_id,
        "day_shift": m.day_shift,
        "night_on_call": m.night_on_call,
        "active": m.active,
    }


def _invalid(field: str, reason: str) -> Invalid:
    return Invalid.field(field, reason)


def _claims(member: StaffMember, org: Organisation | None) -> tuple[object, ...]:
    """What a member's tokens say (role, channel, tier, organisation, area) and whether they
    may still be used: when this changes, every token issued before must stop working."""
    p = principal_of(member, org)
    return (p.role, p.channel, p.tier, p.organisation, p.grid_codes, member.active)


def _revoke_tokens(tx: Tx, ctx: Context, member: StaffMember) -> None:
    """Every token issued to `member` before stops working, here at once and on the other
    services over `staff.changed` (shared.staff_status)."""
    member.token_version += 1
    tx.emit(
        ctx.topics.staff,
        "staff.changed",
        StaffChanged(
            staff_id=member.id,
            active=member.active,
            token_version=member.token_version,
            changed_at=utcnow(),
        ),
        case_id=member.id,
    )
    tx.session.add(member)


@router.get("/organisations", response_model=OrganisationList)
async def list_organisations(ctx: Ctx, staff: CurrentStaff) -> dict[str, Any]:
    """Every organisation."""
    _require_manager(staff)
    async with ctx.delivery.sessions() as session:
        return {"items": [org_body(o) for o in await organisations(session, active_only=False)]}


@router.post("/organisations", status_code=201, response_model=OrganisationView)
async def create_organisation(
    body: OrganisationIn, ctx: Ctx, staff: CurrentStaff
) -> dict[str, Any]:
    """Create or update an organisation (by id)."""
    _require_manager(staff)
    if body.kind == "mediation" and body.channel not in ctx.channels:
        raise _invalid("channel", f"must be one of {', '.join(ctx.channels.codes())}")
    if body.kind == "coordination" and body.channel is not None:
        raise _invalid("channel", "a coordination centre has no channel")
    if body.tier not in TIERS:
        raise _invalid("tier", "unknown tier")
    reason = management_refusal(staff, body.tier, body.grid_codes)
    if reason is not None:
        raise Forbidden(reason)
    async with ctx.delivery.transaction() as tx:
        row = await tx.session.get(Organisation, body.id)
        if row is not None:
            _require_scope(staff, row)  # nobody takes over another area's organisation by id
        members = [] if row is None else await staff_of(tx.session, row.id)
        before = {m.id: _claims(m, row) for m in members}
        if row is None:
            row = Organisation(
                id=body.id, name=body.name, tier=body.tier, created_at=ctx.clock.now()
            )
        row.name, row.kind, row.channel, row.tier = body.name, body.kind, body.channel, body.tier
        row.grid_codes, row.active = list(body.grid_codes), body.active
        tx.session.add(row)
        for m in members:  # they carry the organisation's channel and tier, and its area
            m.channel, m.tier = row.channel, row.tier
            if _claims(m, row) != before[m.id]:
                _revoke_tokens(tx, ctx, m)
    ctx.directory.invalidate()  # committed: assignment reads the new facts
    return org_body(row)


@router.get("/mediators", response_model=StaffList)
async def list_staff(
    ctx: Ctx, staff: CurrentStaff, organisation_id: str | None = None, role: str | None = None
) -> dict[str, Any]:
    """Mediators and other staff, optionally of one organisation or role."""
    _require_manager(staff)
    async with ctx.delivery.sessions() as session:
        rows = await staff_of(session, organisation_id, role)
    return {"items": [staff_body(m) for m in rows]}


@router.post("/mediators", status_code=201, response_model=StaffView)
async def create_staff(body: StaffIn, ctx: Ctx, staff: CurrentStaff) -> dict[str, Any]:
    """Create or update a mediator (or coordinator/viewer) of an organisation."""
    _require_manager(staff)
    async with ctx.delivery.transaction() as tx:
        org = await tx.session.get(Organisation, body.organisation_id or "")
        if org is None and (
            body.role in ("mediator", "coordinator") or body.organisation_id is not None
        ):
            raise _invalid("organisation_id", "no such organisation")
        if body.role == "mediator" and org is not None and org.kind != "mediation":
            raise _invalid("organisation_id", "mediators belong to a mediation organisation")
        _require_scope(staff, org)
        row = await tx.session.get(StaffMember, body.id)
        before = None
        if row is not None:
            old_org = await tx.session.get(Organisation, row.organisation_id or "")
            _require_scope(staff, old_org)
            before = _claims(row, old_org)
        if row is None:
            row = StaffMember(id=body.id, name=body.name, created_at=ctx.clock.now())
        row.name, row.role, row.organisation_id = body.name, body.role, body.organisation_id
        row.channel = org.channel if org else None
        row.tier = org.tier if org else None
        row.day_shift, row.night_on_call, row.active = (
            body.day_shift,
            body.night_on_call,
            body.active,
        )
        tx.session.add(row)
        if before is not None and _claims(row, org) != before:  # an update, as PATCH's
            _revoke_tokens(tx, ctx, row)
    ctx.directory.invalidate()  # committed: assignment reads the new facts
    return staff_body(row)


@router.patch("/mediators/{staff_id}", response_model=StaffView)
async def update_staff(
    staff_id: str, body: StaffPatch, ctx: Ctx, staff: CurrentStaff
) -> dict[str, Any]:
    """Change a mediator's duty shifts, organisation or activity."""
    _require_manager(staff)
    async with ctx.delivery.transaction() as tx:
        row = await tx.session.get(StaffMember, staff_id)
        if row is None:
            raise NotFound("staff member", "staff_id")
        org = await tx.session.get(Organisation, row.organisation_id or "")
        _require_scope(staff, org)
        before = _claims(row, org)
        if body.organisation_id is not None:
            org = await tx.session.get(Organisation, body.organisation_id)
            if org is None:
                raise _invalid("organisation_id", "no such organisation")
            _require_scope(staff, org)
            row.organisation_id, row.channel, row.tier = org.id, org.channel, org.tier
        for field in ("day_shift", "night_on_call", "active"):
            value = getattr(body, field)
            if value is not None:
                setattr(row, field, value)
        tx.session.add(row)
        if _claims(row, org) != before:  # deactivated or moved
            _revoke_tokens(tx, ctx, row)
    ctx.directory.invalidate()  # committed: assignment reads the new facts
    return staff_body(row)


@router.post("/mediators/{staff_id}/token", response_model=StaffToken)
async def staff_token(staff_id: str, ctx: Ctx, staff: CurrentStaff) -> dict[str, Any]:
    """Issue a bearer token for a member of staff (admins only)."""
    _require_admin(staff)
    async with ctx.delivery.sessions() as session:
        try:
            principal = await principal_for(session, staff_id)
        except LookupError:
            raise NotFound("staff member", "staff_id") from None
    ttl = timedelta(seconds=ctx.settings.token_ttl_s)
    expires: datetime = utcnow() + ttl
    return {
        "token": token_for(ctx.settings, principal, ttl),
        "expires_at": expires,
        "role": principal.role,
    }


@router.post("/supervision/scan", response_model=ScanResult)
async def scan(ctx: Ctx, staff: CurrentStaff) -> dict[str, Any]:
    """Run one overdue scan now (admins only)."""
    _require_admin(staff)
    raised = await scan_overdue(ctx)
    return {"raised": [{"case_id": r.case_id, "kind": r.kind} for r in raised]}
