"""The demo county (南溪县, 522731): organisations per channel and tier, staff, and their tokens.

Idempotent: running it again leaves existing rows as they are and issues fresh tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.mediation.repository import Organisation, StaffMember
from services.mediation.settings import MediationSettings
from services.mediation.staff import principal_of, token_for
from shared.contracts import Channel, Tier
from shared.db import make_engine, migrate
from shared.events import utcnow

MIGRATIONS = Path(__file__).parent / "migrations"
CHANNELS: tuple[str, ...] = tuple(Channel)
TIERS: tuple[str, ...] = tuple(Tier)

CHANNEL_ORG = {
    "police": "警调对接调解室",
    "court": "诉调对接工作站",
    "labour": "劳动争议调解委员会",
    "medical": "医疗纠纷调解工作站",
    "people": "人民调解委员会",
}
COORDINATION = {"grid": "网格综治工作站", "town": "综治中心", "county": "矛盾纠纷调处化解中心"}
NAMES = [
    "王建国",
    "李秀兰",
    "张志强",
    "刘芳",
    "陈伟",
    "杨丽",
    "赵磊",
    "黄敏",
    "周军",
    "吴静",
    "徐斌",
    "孙霞",
    "马涛",
    "朱红",
    "胡勇",
    "郭玲",
    "何平",
    "高翔",
    "林燕",
    "罗刚",
]


def demo_layout(county: str, county_name: str) -> dict[str, Any]:
    """Area names and grid codes of the demo county."""
    town1, town2 = f"{county}001", f"{county}002"
    return {
        "areas": {
            "county": county_name,
            "town": f"{county_name}城关镇",
            "grid": f"{county_name}城关镇东街社区",
        },
        "grids": {
            "county": [county],
            "town": [town1, town2],
            "grid": [f"{town1}001", f"{town1}002"],
        },
    }


def demo_rows(settings: MediationSettings) -> tuple[list[Organisation], list[StaffMember]]:
    """The organisations and staff of the demo county."""
    now = utcnow()
    layout = demo_layout(settings.county_code, settings.county_name)
    orgs: list[Organisation] = []
    staff: list[StaffMember] = []
    names = iter(NAMES * 3)
    for tier in TIERS:
        area, grids = layout["areas"][tier], layout["grids"][tier]
        for channel in CHANNELS:
            org = Organisation(
                id=f"{channel}-{tier}",
                name=f"{area}{CHANNEL_ORG[channel]}",
                kind="mediation",
                channel=channel,
                tier=tier,
                grid_codes=list(grids),
                created_at=now,
            )
            orgs.append(org)
            staff.append(
                StaffMember(
                    id=f"med-{channel}-{tier}-day",
                    name=next(names),
                    role="mediator",
                    channel=channel,
                    tier=tier,
                    organisation_id=org.id,
                    day_shift=True,
                    night_on_call=False,
                    created_at=now,
                )
            )
            if channel in ("police", "people") and tier != "grid":  # 夜间值守
                staff.append(
                    StaffMember(
                        id=f"med-{channel}-{tier}-night",
                        name=next(names),
                        role="mediator",
                        channel=channel,
                        tier=tier,
                        organisation_id=org.id,
                        day_shift=False,
                        night_on_call=True,
                        created_at=now,
                    )
                )
        centre = Organisation(
            id=f"coord-{tier}",
            name=f"{area}{COORDINATION[tier]}",
            kind="coordination",
            channel=None,
            tier=tier,
            grid_codes=list(grids),
            created_at=now,
        )
        orgs.append(centre)
        staff.append(
            StaffMember(
                id=f"coordinator-{tier}",
                name=next(names),
                role="coordinator",
                tier=tier,
                organisation_id=centre.id,
                day_shift=True,
                created_at=now,
            )
        )
    staff.append(
        StaffMember(
            id="viewer-county",
            name=next(names),
            role="viewer",
            tier="county",
            organisation_id="coord-county",
            day_shift=True,
            created_at=now,
        )
    )
    return orgs, staff


async def seed_demo(settings: MediationSettings) -> list[dict[str, Any]]:
    """Migrate, create the demo county, and return each member of staff with a token (≤ 1 h)."""
    engine = make_engine(settings.database_url)
    try:
        await migrate(engine, MIGRATIONS)
        sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        orgs, staff = demo_rows(settings)
        async with sessions() as session, session.begin():
            for org in orgs:
                if await session.get(Organisation, org.id) is None:
                    session.add(org)
            await session.flush()
            for member in staff:
                if await session.get(StaffMember, member.id) is None:
                    session.add(member)
        async with sessions() as session:
            out: list[dict[str, Any]] = []
            for member in staff:
                stored = await session.get(StaffMember, member.id)
                assert stored is not None
                home = await session.get(Organisation, stored.organisation_id or "")
                out.append(
                    {
                        "role": stored.role,
                        "channel": stored.channel,
                        "tier": stored.tier,
                        "organisation": stored.organisation_id,
                        "staff_id": stored.id,
                        "name": stored.name,
                        "day_shift": stored.day_shift,
                        "night_on_call": stored.night_on_call,
                        "token": token_for(settings, principal_of(stored, home)),
                    }
                )
    finally:
        await engine.dispose()
    return out
