"""Staff tokens: what the admin command (`fengqiao`) calls to sign someone in for the demo."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.mediation.repository import Organisation, StaffMember
from services.mediation.settings import MediationSettings
from shared.auth import AUDIENCES, MAX_TOKEN_TTL, StaffPrincipal, issue_token
from shared.db import make_engine

TOKEN_TTL = MAX_TOKEN_TTL


def principal_of(member: StaffMember, org: Organisation | None) -> StaffPrincipal:
    """The token claims of a member of staff: role, channel, tier, organisation and area."""
    return StaffPrincipal(
        subject=member.id,
        role=member.role,
        channel=member.channel,
        tier=member.tier or (org.tier if org else None),
        organisation=member.organisation_id,
        grid_codes=tuple(org.grid_codes) if org else (),
        version=member.token_version,
    )


def token_for(
    settings: MediationSettings, principal: StaffPrincipal, ttl: timedelta = TOKEN_TTL
) -> str:
    """Sign a short-lived bearer token (≤ 1 h) good for the four services, with the issuer's
    private key (only mediation and the `fengqiao token` command hold it)."""
    if not settings.jwt_private_key:
        raise LookupError("no signing key: set MEDIATION_JWT_PRIVATE_KEY on the token issuer")
    ttl = min(ttl, timedelta(seconds=settings.token_ttl_s))
    return issue_token(
        settings.jwt_private_key, AUDIENCES, principal, ttl=ttl, issuer=settings.jwt_issuer
    )


async def principal_for(session: AsyncSession, staff_id: str) -> StaffPrincipal:
    """The principal of a stored member of staff; LookupError when unknown or inactive."""
    member = await session.get(StaffMember, staff_id)
    if member is None or not member.active:
        raise LookupError(f"no active staff member {staff_id!r}")
    org = await session.get(Organisation, member.organisation_id or "")
    return principal_of(member, org)


async def issue_staff_token(
    settings: MediationSettings, staff_id: str, ttl: timedelta = TOKEN_TTL
) -> str:
    """Issue a bearer token for a mediator, coordinator or viewer stored in the database."""
    engine = make_engine(settings.database_url)
    try:
        sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        async with sessions() as session:
            principal = await principal_for(session, staff_id)
    finally:
        await engine.dispose()
    return token_for(settings, principal, ttl)


def issue_admin_token(
    settings: MediationSettings, subject: str = "admin", ttl: timedelta = TOKEN_TTL
) -> str:
    """Issue an admin token (no scope: admins see and do everything)."""
    return token_for(settings, StaffPrincipal(subject=subject, role="admin"), ttl)


async def create_admin(
    settings: MediationSettings, name: str, staff_id: str | None = None, ttl: timedelta = TOKEN_TTL
) -> tuple[str, str]:
    """Store an admin member of staff (the deployment's first) and sign a token for them.

    ValueError when the id is taken by someone who is not an active admin.
    """
    from shared.events import new_id, utcnow

    staff_id = staff_id or f"admin-{new_id()[:8]}"
    engine = make_engine(settings.database_url)
    try:
        sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        async with sessions() as session, session.begin():
            existing = await session.get(StaffMember, staff_id)
            if existing is not None and (existing.role != "admin" or not existing.active):
                raise ValueError(f"staff id {staff_id!r} is taken")
            if existing is None:
                session.add(StaffMember(id=staff_id, name=name, role="admin", created_at=utcnow()))
        async with sessions() as session:
            principal = await principal_for(session, staff_id)
    finally:
        await engine.dispose()
    return staff_id, token_for(settings, principal, ttl)
