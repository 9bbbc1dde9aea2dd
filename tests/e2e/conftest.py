"""All four services in one event loop, talking through the real Kafka broker.

Each test gets fresh topics and consumer groups (a prefix) and its own SQLite files.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.followup.main import create_app as followup_app
from services.followup.settings import FollowupSettings
from services.intake.main import create_app as intake_app
from services.intake.seed import seed_demo as seed_intake
from services.intake.settings import IntakeSettings
from services.mediation.main import create_app as mediation_app
from services.mediation.seed import seed_demo as seed_mediation
from services.mediation.settings import MediationSettings
from services.triage.main import create_app as triage_app
from services.triage.settings import TriageSettings
from shared.auth import AUDIENCES, StaffPrincipal, issue_token


class MovableClock:
    """A clock the test can move that otherwise runs with real time: it starts now, or at the
    next 10:00 Beijing time (day shift) when now is outside office hours. It must never run
    behind the other services' clocks (intake and triage keep the system clock): a clock
    frozen at its start put mediation's trail entries before intake's `receive` whenever the
    tests ran in office hours."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        if 0 <= now.hour < 10:  # 08:00–18:00 in Asia/Shanghai
            self.current = now
        else:
            self.current = (now + timedelta(days=1)).replace(hour=2, minute=0)

    @property
    def current(self) -> datetime:
        """The clock's time: where it was last set, plus the real time since then."""
        return self._set_to + (datetime.now(UTC) - self._set_at)

    @current.setter
    def current(self, value: datetime) -> None:
        self._set_to, self._set_at = value, datetime.now(UTC)

    def now(self) -> datetime:
        return self.current


@dataclass
class System:
    """Clients for each service, the demo credentials, and the moveable clock."""

    intake: httpx.AsyncClient
    triage: httpx.AsyncClient
    mediation: httpx.AsyncClient
    followup: httpx.AsyncClient
    apps: dict[str, FastAPI]
    keys: dict[str, str]
    staff: list[dict[str, Any]]
    admin: dict[str, str]
    clock: MovableClock
    prefix: str
    seen: dict[str, Any] = field(default_factory=dict)

    def token_of(self, staff_id: str) -> dict[str, str]:
        """Bearer header of a seeded member of staff."""
        member = next(s for s in self.staff if s["staff_id"] == staff_id)
        return {"Authorization": f"Bearer {member['token']}"}

    def staff_of(
        self,
        role: str,
        channel: str | None = None,
        tier: str | None = None,
        organisation: str | None = None,
    ) -> dict[str, str]:
        """Bearer header of the first seeded member matching the filters."""
        for s in self.staff:
            if (
                s["role"] == role
                and (channel is None or s["channel"] == channel)
                and (tier is None or s["tier"] == tier)
                and (organisation is None or s["organisation"] == organisation)
            ):
                return {"Authorization": f"Bearer {s['token']}"}
        raise LookupError(f"no seeded {role} for {channel}/{tier}/{organisation}")


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 45.0, what: str = "condition"
) -> Any:
    """Poll an async probe until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


@pytest.fixture
async def system(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> AsyncIterator[System]:
    common: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "topic_prefix": topic_prefix,
        "group_prefix": topic_prefix,
        "relay_interval_s": 0.1,
        "bus": "kafka",
    }
    db = {
        n: f"sqlite+aiosqlite:///{tmp_path / n}.db"
        for n in ("intake", "triage", "mediation", "followup")
    }
    intake_s = IntakeSettings(database_url=db["intake"], **common)
    mediation_s = MediationSettings(database_url=db["mediation"], **common)
    keys = {src: v["api_key"] for src, v in (await seed_intake(intake_s)).items()}
    staff = await seed_mediation(mediation_s)
    clock = MovableClock()
    apps = {
        "intake": intake_app(intake_s),
        "triage": triage_app(TriageSettings(database_url=db["triage"], **common)),
        "mediation": mediation_app(mediation_s, clock=clock),
        "followup": followup_app(
            FollowupSettings(database_url=db["followup"], **common), clock=clock
        ),
    }
    admin = {
        "Authorization": "Bearer "
        + issue_token(mediation_s.jwt_private_key, AUDIENCES, StaffPrincipal("e2e-admin", "admin"))
    }
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name, app in apps.items():
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
            )
        yield System(
            **clients,
            apps=apps,
            keys=keys,
            staff=staff,
            admin=admin,
            clock=clock,
            prefix=topic_prefix,
        )
