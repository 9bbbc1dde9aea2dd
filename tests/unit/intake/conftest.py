"""Intake unit-test harness: the app on the in-memory bus and a SQLite file, driven by httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.intake.integrators import create_integrator
from services.intake.main import create_app
from services.intake.settings import IntakeSettings
from shared.bus import InMemoryBus, OutgoingMessage
from shared.contracts import REGISTRY, TrailAppended
from shared.events import Envelope, utcnow
from shared.topics import SOURCES, Topics


def make_settings(tmp_path: Path, **overrides: Any) -> IntakeSettings:
    """Settings for a unit test: memory bus, a fresh SQLite file, fast loops."""
    base: dict[str, Any] = {
        "bus": "memory",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}",
        "topic_prefix": "",
        "group_prefix": "",
        "relay_interval_s": 0.02,
        "webhook_poll_s": 0.02,
        "webhook_backoff_base_s": 0.01,
        "rate_limit_per_s": 1000.0,
        "rate_limit_burst": 1000,
        "failed_key_burst": 1000,
        "max_text_chars": 2000,
        "max_body_bytes": 64 * 1024,
        "dev_mode": True,
    }
    return IntakeSettings(**(base | overrides))


@dataclass
class Intake:
    """A running intake app with one integrator key per source."""

    app: FastAPI
    client: httpx.AsyncClient
    bus: InMemoryBus
    keys: dict[str, str] = field(default_factory=dict)
    topics: Topics = field(default_factory=Topics)

    async def post(self, report: dict[str, Any], key: str | None = None) -> httpx.Response:
        """POST /v1/reports with the key of the report's source."""
        k = key if key is not None else self.keys[str(report.get("source", "110"))]
        return await self.client.post("/v1/reports", json=report, headers={"X-API-Key": k})

    async def settle(self) -> None:
        """Publish the outbox and let every consumer finish (twice: trail → feedback)."""
        for _ in range(3):
            await self.app.state.runtime.relay.publish_pending()
            await self.bus.drain(timeout=60)

    async def publish_native(self, source: str, raw: bytes) -> None:
        """A source system publishes a native record."""
        await self.bus.publish([OutgoingMessage(self.topics.source(source), None, raw)])

    async def publish_trail(
        self,
        case_id: str,
        frm: str | None,
        to: str,
        *,
        details: dict[str, Any] | None = None,
        actor: str = "system:triage",
    ) -> None:
        """Another service appends a trail entry for a case."""
        entry = TrailAppended(
            case_id=case_id,
            at=utcnow(),
            actor=actor,
            action="test",
            from_status=frm,
            to_status=to,
            reason="test transition",
            details=details or {},
        )
        env: Envelope = REGISTRY.event(
            entry, event_type="trail.appended", producer="triage", case_id=case_id
        )
        await self.bus.publish([OutgoingMessage(self.topics.trail, case_id, env.to_bytes())])

    def events(self, topic: str, event_type: str | None = None) -> list[Envelope]:
        """Envelopes published on a topic."""
        envs = [Envelope.from_bytes(m.value) for m in self.bus.log[topic]]
        return [e for e in envs if event_type is None or e.event_type == event_type]


@pytest.fixture
def intake_settings(tmp_path: Path) -> IntakeSettings:
    """Default unit-test settings."""
    return make_settings(tmp_path)


async def public_resolver(host: str, port: int) -> list[str]:
    """Test callback hosts (*.test) resolve to one public address."""
    return ["93.184.216.34"]


async def start_intake(settings: IntakeSettings, **app_kw: Any) -> AsyncIterator[Intake]:
    """Run the app's lifespan, create one integrator per source, yield the harness."""
    if "webhook_transport" in app_kw:
        app_kw.setdefault("webhook_resolver", public_resolver)
    bus = InMemoryBus()
    app = create_app(settings, bus=bus, configure_logs=False, **app_kw)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            h = app.state.handlers
            keys = {}
            for source in SOURCES:
                new = await create_integrator(
                    h.delivery.sessions, h.cipher, name=f"test-{source}", source=source
                )
                keys[source] = new.api_key
            harness = Intake(app, client, bus, keys)
            yield harness
            await harness.settle()
            # the trail consumer never dead-letters in these tests
            assert bus.log[Topics.dlq(harness.topics.trail)] == []
    await bus.stop()


@pytest.fixture
async def intake(intake_settings: IntakeSettings) -> AsyncIterator[Intake]:
    """The intake app, running."""
    async for harness in start_intake(intake_settings):
        yield harness


def report(
    source: str = "110", ref: str = "R-1", text: str = "邻居楼上漏水，双方争吵。", **extra: Any
) -> dict[str, Any]:
    """A small canonical report."""
    return {
        "source": source,
        "source_ref": ref,
        "text": text,
        "reported_at": "2026-11-20T08:15:00+08:00",
    } | extra


async def trail_batch_on_twelve_cases(
    h: Intake, prefix: str, details: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Twelve grid reports (one case each) and a thirteenth merged into the first, then one
    trail entry per case published together (one batch on the memory bus): the cases' ids
    and the `UPDATE intake_cases` statements that batch ran. Odd cases get an organisation."""
    from sqlalchemy import event

    ids = []
    for i in range(12):
        party = [{"name": "赵六", "phone": f"1370000{i:04d}"}]
        ids.append((await h.post(report("grid", f"{prefix}-{i}", parties=party))).json()["case_id"])
    await h.post(report("grid", f"{prefix}-merged", parties=[{"phone": "13700000000"}]))
    await h.settle()
    updates: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE INTAKE_CASES"):
            updates.append(statement)

    engine = h.app.state.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for n, case_id in enumerate(ids):
            entry = dict(details)
            if n % 2:
                entry["organisation_id"] = f"org-{n}"
            await h.publish_trail(case_id, "received", "triaged", details=entry)
        await h.settle()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return ids, updates
