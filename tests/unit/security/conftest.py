"""The four services on the in-memory bus, each holding the same two cases (A and B).

Case A: people channel, town tier, grid 522731001001, organisation people-town, assigned to
med-people-town-day, police as co-handler. Case B: labour, town tier, grid 522799001 (another
area), another organisation and mediator, no co-handler.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.auth import StaffPrincipal, issue_token
from shared.bus import InMemoryBus, OutgoingMessage
from shared.clock import ManualClock
from shared.contracts import REGISTRY, CaseAgreed, CaseTriaged, PartyRef, TrailAppended
from shared.events import Envelope, new_id, utcnow
from shared.pii import PiiCipher
from shared.topics import Topics

DAY = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: the day shift is on duty
ORG_A, MEDIATOR_A = "people-town", "med-people-town-day"
SCOPE_A: dict[str, Any] = {
    "channel": "people",
    "tier": "town",
    "grid_code": "522731001001",
    "organisation_id": ORG_A,
    "mediator_id": MEDIATOR_A,
    "co_channels": ["police"],
}
SCOPE_B: dict[str, Any] = {
    "channel": "labour",
    "tier": "town",
    "grid_code": "522799001",
    "organisation_id": "labour-elsewhere",
    "mediator_id": "med-labour-elsewhere",
    "co_channels": [],
}
CONTACT = {
    "reporter": {"name": "赵大海", "phone": "13912345678", "role": "citizen"},
    "parties": [{"name": "张三丰", "phone": "13812345678", "role": "applicant"}],
    "address": "南溪县城关镇东街12号",
}


@dataclass
class Running:
    """One service under test with its two cases."""

    name: str
    app: FastAPI
    client: httpx.AsyncClient
    case_a: str
    case_b: str
    settle: Callable[[], Awaitable[None]]
    extra: dict[str, Any] = field(default_factory=dict)

    def bearer(self, p: StaffPrincipal) -> dict[str, str]:
        """Authorization header for a principal, signed as this deployment signs."""
        s = self.app.state.settings
        return {"Authorization": f"Bearer {issue_token(s.jwt_private_key, s.jwt_audience, p)}"}


def trail(case_id: str, to: str, details: dict[str, Any], at: datetime | None = None) -> Envelope:
    """A trail entry from another service."""
    return REGISTRY.event(
        TrailAppended(
            case_id=case_id,
            at=at or utcnow(),
            actor="system:mediation",
            action="assign",
            from_status="triaged",
            to_status=to,
            reason="assigned",
            details=details,
        ),
        event_type="trail.appended",
        producer="mediation",
        case_id=case_id,
    )


async def publish(bus: InMemoryBus, topic: str, env: Envelope) -> None:
    """Put one event on the bus and let the consumers handle it."""
    await bus.publish([OutgoingMessage(topic, env.case_id, env.to_bytes())])
    await bus.drain()


# --- intake -----------------------------------------------------------------------------------


async def run_intake(tmp: Path) -> AsyncIterator[Running]:
    """Intake with A and B reported over HTTP by one integrator, then assigned."""
    from tests.unit.intake.conftest import make_settings, report, start_intake

    async for h in start_intake(make_settings(tmp)):
        ids = []
        for ref, scope in (("A-1", SCOPE_A), ("B-1", SCOPE_B)):
            parties = [{"name": "张三丰", "phone": "13812345678", "role": "applicant"}]
            if ref == "B-1":
                parties = [{"name": "王五", "phone": "13611112222", "role": "applicant"}]
            r = await h.post(
                report(
                    "110",
                    ref,
                    text=f"报警人称工资纠纷 {ref}",
                    parties=parties,
                    location={"grid_code": scope["grid_code"], "address": "城关镇东街12号"},
                )
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["case_id"])
            await h.settle()
            await publish(h.bus, h.topics.trail, trail(ids[-1], "assigned", scope))
            await h.settle()

        yield Running("intake", h.app, h.client, ids[0], ids[1], h.settle, {"keys": h.keys})


# --- triage -----------------------------------------------------------------------------------


async def run_triage(tmp: Path) -> AsyncIterator[Running]:
    """Triage with A and B received, decided, then assigned."""
    from services.triage.main import create_app
    from services.triage.settings import TriageSettings
    from shared.contracts import ReportReceived

    bus = InMemoryBus()
    settings = TriageSettings(
        bus="memory", database_url=f"sqlite+aiosqlite:///{tmp}/t.db", dev_mode=True
    )
    app = create_app(settings, bus=bus)
    topics = Topics("")
    async with app.router.lifespan_context(app):

        async def settle() -> None:
            for _ in range(3):
                await app.state.runtime.relay.publish_pending()
                await bus.drain()

        ids = []
        for scope in (SCOPE_A, SCOPE_B):
            cid = new_id()
            env = REGISTRY.event(
                ReportReceived(
                    case_id=cid,
                    source="12345",
                    source_ref=f"r-{cid}",
                    received_at=utcnow(),
                    text="工地工人被拖欠工资八万多元，多次讨要未果。",
                    grid_code=scope["grid_code"],
                ),
                event_type="report.received",
                producer="intake",
                case_id=cid,
            )
            await publish(bus, topics.reports, env)
            await settle()
            await publish(bus, topics.trail, trail(cid, "assigned", scope))
            await settle()
            ids.append(cid)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://triage") as client:
            yield Running("triage", app, client, ids[0], ids[1], settle)
    await bus.stop()


# --- mediation --------------------------------------------------------------------------------


_SEEDED: dict[str, Any] = {}


async def run_mediation(tmp: Path) -> AsyncIterator[Running]:
    """Mediation with the demo county seeded; A and B triaged and auto-assigned."""
    from services.mediation.channels import default_channels
    from services.mediation.channels.testing import TestChannel
    from services.mediation.main import create_app
    from services.mediation.seed import seed_demo
    from tests.unit.mediation.conftest import make_settings

    if "db" not in _SEEDED:
        folder = tmp.parent / "mediation-seeded"
        folder.mkdir(exist_ok=True)
        await seed_demo(make_settings(folder))
        _SEEDED["db"] = folder / "m.db"
    shutil.copy(_SEEDED["db"], tmp / "m.db")
    settings = make_settings(tmp)
    channels = default_channels()
    channels.register(TestChannel(code="people", name="人民调解"))
    bus = InMemoryBus()
    clock = ManualClock(DAY)
    topics = Topics("u.")
    app = create_app(settings, bus=bus, clock=clock, channels=channels)
    async with app.router.lifespan_context(app):
        await app.state.runtime.relay.stop()

        async def settle() -> None:
            await app.state.runtime.relay.publish_pending()
            await bus.drain()

        ids = []
        for scope in (SCOPE_A, SCOPE_B):
            cid = new_id()
            now = clock.now()
            payload = CaseTriaged(
                case_id=cid,
                source="grid",
                source_ref=f"g-{cid[:8]}",
                dispute_type="neighbour" if scope is SCOPE_A else "labour",
                severity="medium",
                channel=scope["channel"],
                co_channels=scope["co_channels"],
                tier=scope["tier"],
                rule_id="R7",
                rules_version="test",
                sign_for_due=now + timedelta(hours=4),
                mediation_due=now + timedelta(days=30),
                grid_code=scope["grid_code"],
                text="楼上漏水，协商未果",
                parties=[PartyRef(role="applicant", display="张*丰")],
                sealed_contact=PiiCipher(settings.pii_key).seal(CONTACT),
            )
            env = REGISTRY.event(payload, event_type="case.triaged", producer="triage", case_id=cid)
            await publish(bus, topics.triaged, env)
            await settle()
            ids.append(cid)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mediation") as client:
            yield Running("mediation", app, client, ids[0], ids[1], settle)
    await bus.stop()


# --- followup ---------------------------------------------------------------------------------


async def run_followup(tmp: Path) -> AsyncIterator[Running]:
    """Follow-up with A and B agreed and in follow-up (visits scheduled)."""
    from services.followup.main import create_app
    from services.followup.settings import FollowupSettings
    from tests.unit.followup.conftest import T0, Ledger

    bus = InMemoryBus()
    clock = ManualClock(T0 + timedelta(days=1))
    settings = FollowupSettings(
        bus="memory", database_url=f"sqlite+aiosqlite:///{tmp}/f.db", dev_mode=True
    )
    app = create_app(settings, bus=bus, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://followup") as client:
            ledger = Ledger(app, bus, clock, client)
            for cid, scope in (("case-a", SCOPE_A), ("case-b", SCOPE_B)):
                await ledger.life(cid, "agreed", details={**scope, "source_ref": f"ref-{cid}"})
                env = REGISTRY.event(
                    CaseAgreed(
                        case_id=cid,
                        agreement_id=f"agr-{cid}",
                        terms="赔偿两千元",
                        agreed_at=T0 + timedelta(hours=5),
                        channel=scope["channel"],
                        tier=scope["tier"],
                        organisation_id=scope["organisation_id"],
                        mediator_id=scope["mediator_id"],
                    ),
                    event_type="case.agreed",
                    producer="mediation",
                    case_id=cid,
                )
                await ledger.publish(Topics("").mediation, env)
            yield Running("followup", app, client, "case-a", "case-b", ledger.settle)
    await bus.stop()


RUNNERS = {
    "intake": run_intake,
    "triage": run_triage,
    "mediation": run_mediation,
    "followup": run_followup,
}


@pytest.fixture(params=list(RUNNERS))
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    """Each of the four services in turn, holding cases A and B."""
    async for r in RUNNERS[request.param](tmp_path):
        yield r


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[Any]:
    """The intake app with one integrator key per source (tests/unit/intake's harness)."""
    from tests.unit.intake.conftest import make_settings, start_intake

    async for h in start_intake(make_settings(tmp_path)):
        yield h
