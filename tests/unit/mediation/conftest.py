"""A running mediation service on the in-memory bus, a seeded demo county and a movable clock."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.mediation.assignment import Context
from services.mediation.channels import ChannelRegistry, default_channels
from services.mediation.channels.testing import TestChannel
from services.mediation.main import create_app
from services.mediation.seed import seed_demo
from services.mediation.settings import MediationSettings
from services.mediation.staff import issue_admin_token, token_for
from services.mediation.supervision import scan_overdue
from shared.auth import StaffPrincipal
from shared.bus import InMemoryBus, OutgoingMessage
from shared.clock import ManualClock
from shared.contracts import REGISTRY, CaseClosed, CaseReopened, CaseTriaged, PartyRef
from shared.events import Envelope, new_id
from shared.pii import PiiCipher
from shared.topics import Topics

# 2026-11-20 10:00 in Shanghai: the day shift is on duty.
DAY = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
CONTACT = {
    "reporter": {"name": "赵大海", "phone": "13912345678", "role": "citizen"},
    "parties": [
        {
            "name": "张三丰",
            "phone": "13812345678",
            "id_number": "522731199001011234",
            "role": "applicant",
        },
        {"name": "李四光", "phone": "13700001111", "role": "respondent"},
    ],
    "address": "南溪县城关镇东街12号3单元",
}


@dataclass
class Svc:
    """The service under test and helpers to drive it."""

    app: FastAPI
    client: httpx.AsyncClient
    bus: InMemoryBus
    clock: ManualClock
    settings: MediationSettings
    staff: dict[str, dict[str, Any]]
    people: TestChannel
    topics: Topics = field(default_factory=lambda: Topics("u."))

    @property
    def ctx(self) -> Context:
        """The service context."""
        ctx: Context = self.app.state.ctx
        return ctx

    def token(self, staff_id: str) -> dict[str, str]:
        """Authorization header of a seeded member of staff (or "admin")."""
        if staff_id == "admin":
            return {"Authorization": f"Bearer {issue_admin_token(self.settings)}"}
        return {"Authorization": f"Bearer {self.staff[staff_id]['token']}"}

    def principal_token(self, p: StaffPrincipal) -> dict[str, str]:
        """Authorization header of an arbitrary principal."""
        return {"Authorization": f"Bearer {token_for(self.settings, p)}"}

    async def flush(self) -> None:
        """Publish committed outbox rows and wait until consumers handled them."""
        await self.app.state.runtime.relay.publish_pending()
        await self.bus.drain()

    async def publish(self, topic: str, event_type: str, payload: Any, case_id: str) -> Envelope:
        """Publish an event from another service and wait until it is handled."""
        env = REGISTRY.event(payload, event_type=event_type, producer="test", case_id=case_id)
        await self.bus.publish([OutgoingMessage(topic, case_id, env.to_bytes())])
        await self.bus.drain()
        await self.flush()
        return env

    async def triaged(self, case_id: str | None = None, **kw: Any) -> str:
        """Publish a case.triaged (a routed case) and wait until mediation handled it."""
        case_id = case_id or new_id()
        await self.publish(self.topics.triaged, "case.triaged", self.routed(case_id, **kw), case_id)
        return case_id

    def routed(self, case_id: str, **kw: Any) -> CaseTriaged:
        """A case.triaged payload: a neighbour case routed to the people's channel (kw wins)."""
        now = self.clock.now()
        payload = {
            "case_id": case_id,
            "source": "grid",
            "source_ref": f"g-{case_id[:8]}",
            "dispute_type": "neighbour",
            "severity": "medium",
            "channel": "people",
            "co_channels": [],
            "tier": "town",
            "rule_id": "R7",
            "rules_version": "test",
            "sign_for_due": now + timedelta(hours=4),
            "mediation_due": now + timedelta(days=30),
            "attempt": 1,
            "grid_code": "522731001001",
            "text": "楼上漏水，协商未果",
            "parties": [
                PartyRef(role="applicant", display="张*丰"),
                PartyRef(role="respondent", display="李*光"),
            ],
            "sealed_contact": PiiCipher(self.settings.pii_key).seal(CONTACT),
        } | kw
        return CaseTriaged(**payload)

    async def reopened(self, case_id: str) -> None:
        """Follow-up found the agreement broken."""
        await self.publish(
            self.topics.followup,
            "case.reopened",
            CaseReopened(case_id=case_id, reason="未按期付款", visit_id="v1"),
            case_id,
        )

    async def closed(self, case_id: str) -> None:
        """Follow-up closed the loop."""
        await self.publish(
            self.topics.followup,
            "case.closed",
            CaseClosed(case_id=case_id, outcome="honoured"),
            case_id,
        )

    async def case(self, case_id: str, who: str = "admin") -> dict[str, Any]:
        """GET the case as someone."""
        r = await self.client.get(f"/v1/mediation/cases/{case_id}", headers=self.token(who))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def act(
        self,
        case_id: str,
        action: str,
        who: str = "admin",
        body: dict[str, Any] | None = None,
        expect: int = 200,
    ) -> dict[str, Any]:
        """POST an action and check the status code."""
        r = await self.client.post(
            f"/v1/cases/{case_id}/{action}", headers=self.token(who), json=body
        )
        assert r.status_code == expect, r.text
        await self.flush()
        out: dict[str, Any] = r.json()
        return out

    async def scan(self) -> list[Any]:
        """Run one overdue scan at the clock's time and publish what it raised."""
        raised = await scan_overdue(self.ctx)
        await self.flush()
        return raised

    def events(
        self, topic: str, case_id: str | None = None, event_type: str | None = None
    ) -> list[Envelope]:
        """Envelopes published on a topic, optionally of one case and type."""
        out = [Envelope.from_bytes(m.value) for m in self.bus.log[topic]]
        return [
            e
            for e in out
            if (case_id is None or e.case_id == case_id)
            and (event_type is None or e.event_type == event_type)
        ]

    def trail(self, case_id: str) -> list[dict[str, Any]]:
        """Trail entries this service published for a case, in order."""
        return [e.payload for e in self.events(self.topics.trail, case_id, "trail.appended")]


def make_settings(tmp_path: Path, **kw: Any) -> MediationSettings:
    """Settings for a unit test: memory bus, a file database, no background scanner."""
    return MediationSettings(
        bus="memory",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        topic_prefix="u.",
        group_prefix="u.",
        scan_interval_s=0,
        relay_interval_s=0.05,
        **kw,
    )


@pytest.fixture
def clock() -> ManualClock:
    """Time stands still at 10:00 Shanghai time until a test moves it."""
    return ManualClock(DAY)


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The demo county, migrated and seeded once; each test gets a copy of the file."""
    folder = tmp_path_factory.mktemp("seeded")
    entries = asyncio.run(seed_demo(make_settings(folder)))
    return folder / "m.db", entries


@pytest.fixture
async def svc(
    tmp_path: Path, clock: ManualClock, seeded: tuple[Path, list[dict[str, Any]]]
) -> AsyncIterator[Svc]:
    """The mediation service with the demo county seeded."""
    settings = make_settings(tmp_path)
    shutil.copy(seeded[0], tmp_path / "m.db")
    staff = {e["staff_id"]: e for e in seeded[1]}
    people = TestChannel(code="people", name="人民调解", transfer_targets=("litigation",))
    channels: ChannelRegistry = default_channels()
    channels.register(people)
    bus = InMemoryBus()
    app = create_app(settings, bus=bus, clock=clock, channels=channels)
    async with app.router.lifespan_context(app):
        # Tests publish the outbox themselves (Svc.flush), so nothing is published twice.
        await app.state.runtime.relay.stop()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mediation") as client:
            yield Svc(app, client, bus, clock, settings, staff, people)


def dump(x: Any) -> str:
    """Readable JSON for assertion messages."""
    return json.dumps(x, ensure_ascii=False, default=str, indent=1)
