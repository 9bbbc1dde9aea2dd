"""The triage service on the in-memory bus: reports in, decisions and trail out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from services.triage.main import create_app
from services.triage.repository import TABLES, TriageDecisionRow
from services.triage.settings import TriageSettings
from shared.auth import StaffPrincipal, issue_token
from shared.bus import InMemoryBus, OutgoingMessage
from shared.contracts import REGISTRY, CaseReturned, PartyRef, ReportReceived, ReportRepeated
from shared.events import Envelope, utcnow
from shared.topics import Topics

TOPICS = Topics("")


@pytest.fixture
async def app(tmp_path: Path, memory_bus: InMemoryBus) -> AsyncIterator[FastAPI]:
    settings = TriageSettings(bus="memory", database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db")
    app = create_app(settings, bus=memory_bus)
    async with app.router.lifespan_context(app):
        yield app


def received(case_id: str, text: str, source: str = "12345", **kw: Any) -> Envelope:
    return REGISTRY.event(
        ReportReceived(
            case_id=case_id,
            source=source,
            source_ref=f"r-{case_id}",
            received_at=utcnow(),
            text=text,
            **kw,
        ),
        event_type="report.received",
        producer="intake",
        case_id=case_id,
    )


def repeated(case_id: str, text: str, repeat_count: int) -> Envelope:
    """Intake's report.repeated: another report of the case (a later grid record)."""
    return REGISTRY.event(
        ReportRepeated(
            case_id=case_id,
            source="grid",
            source_ref=f"r-{case_id}b",
            repeat_count=repeat_count,
            text=text,
        ),
        event_type="report.repeated",
        producer="intake",
        case_id=case_id,
    )


def returned(case_id: str, channel: str) -> Envelope:
    """Mediation's case.returned: the channel sent the case back (first return)."""
    return REGISTRY.event(
        CaseReturned(
            case_id=case_id,
            channel=channel,
            reason="非本渠道",
            return_count=1,
            excluded_channels=[channel],
        ),
        event_type="case.returned",
        producer="mediation",
        case_id=case_id,
    )


async def publish(bus: InMemoryBus, topic: str, env: Envelope) -> None:
    await bus.publish([OutgoingMessage(topic, env.case_id, env.to_bytes())])
    await bus.drain()


async def flush(app: FastAPI) -> None:
    await app.state.runtime.relay.publish_pending()


def events(bus: InMemoryBus, topic: str, event_type: str) -> list[Envelope]:
    envs = [Envelope.from_bytes(m.value) for m in bus.log[topic]]
    return [e for e in envs if e.event_type == event_type]


async def test_a_report_is_routed_with_reasons_trail_and_deadlines(
    app: FastAPI, memory_bus: InMemoryBus
) -> None:
    env = received("c1", "工地二十多名工人被包工头拖欠工资八万多元，多次讨要未果。")
    await publish(memory_bus, TOPICS.reports, env)
    await flush(app)
    [triaged] = events(memory_bus, TOPICS.triaged, "case.triaged")
    p = triaged.payload
    assert (p["dispute_type"], p["severity"], p["channel"], p["tier"]) == (
        "labour",
        "high",
        "labour",
        "town",
    )
    assert p["rule_id"] and p["rules_version"] and p["decision"]["reasons"]
    assert triaged.causation_id == env.event_id and triaged.correlation_id == env.correlation_id
    [trail] = events(memory_bus, TOPICS.trail, "trail.appended")
    assert trail.payload["from_status"] == "received" and trail.payload["to_status"] == "triaged"
    assert trail.payload["details"]["channel"] == "labour"
    assert trail.payload["details"]["rules_version"] == p["rules_version"]


async def test_the_same_event_twice_is_decided_once(app: FastAPI, memory_bus: InMemoryBus) -> None:
    env = received("c2", "楼上邻居每天深夜噪音扰民，协商无果。")
    await publish(memory_bus, TOPICS.reports, env)
    await publish(memory_bus, TOPICS.reports, env)
    async with app.state.runtime.sessions() as s:
        rows = (await s.exec(select(TriageDecisionRow))).all()
    assert len(rows) == 1


async def test_a_returned_case_is_routed_again_without_that_channel(
    app: FastAPI, memory_bus: InMemoryBus
) -> None:
    await publish(
        memory_bus,
        TOPICS.reports,
        received(
            "c3",
            "两人因借款三千元发生争执，互相推搡。",
            source="110",
            parties=[PartyRef(kind="person", display="张*")],
        ),
    )
    first = events(memory_bus, TOPICS.triaged, "case.triaged")
    await flush(app)
    first = events(memory_bus, TOPICS.triaged, "case.triaged")[0].payload
    ret = returned("c3", first["channel"])
    await publish(memory_bus, TOPICS.mediation, ret)
    await flush(app)
    second = events(memory_bus, TOPICS.triaged, "case.triaged")[-1].payload
    assert second["attempt"] == 2 and second["channel"] != first["channel"]
    assert first["channel"] in second["excluded_channels"]
    trail = [e.payload for e in events(memory_bus, TOPICS.trail, "trail.appended")]
    assert [(t["from_status"], t["to_status"]) for t in trail] == [
        ("received", "triaged"),
        ("returned", "triaged"),
    ]


async def test_preview_decides_without_storing(app: FastAPI) -> None:
    s = app.state.settings
    viewer = issue_token(s.jwt_private_key, s.jwt_audience, StaffPrincipal("v", "viewer"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"Authorization": f"Bearer {viewer}"},
    ) as c:
        anonymous = await c.post(
            "/v1/triage/preview",
            json={"source": "grid", "text": "楼上漏水"},
            headers={"Authorization": ""},
        )
        assert anonymous.status_code == 401  # staff only
        r = await c.post(
            "/v1/triage/preview",
            json={
                "source": "grid",
                "source_ref": "g1",
                "text": "村民扬言不给补偿就把汽油浇在身上同归于尽，现场三十多人围堵。",
            },
        )
        bad = await c.post("/v1/triage/preview", json={"source": "999", "text": ""})
        async with app.state.runtime.sessions() as s:
            rows = (await s.exec(select(TriageDecisionRow))).all()
    body = r.json()
    assert r.status_code == 200 and body["severity"] == "critical" and body["tier"] == "county"
    assert body["channel"] == "police" and body["co_channels"] and body["source_ref"] == "g1"
    assert rows == []
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert fields == {"source", "text"}


async def test_rules_reload_needs_a_coordinator_and_reports_the_version(app: FastAPI) -> None:
    s = app.state.settings
    viewer = issue_token(s.jwt_private_key, s.jwt_audience, StaffPrincipal("v", "viewer"))
    coord = issue_token(s.jwt_private_key, s.jwt_audience, StaffPrincipal("c", "coordinator"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.post("/v1/triage/rules/reload")).status_code == 401
        assert (
            await c.post("/v1/triage/rules/reload", headers={"Authorization": f"Bearer {viewer}"})
        ).status_code == 403
        r = await c.post("/v1/triage/rules/reload", headers={"Authorization": f"Bearer {coord}"})
    assert r.status_code == 200 and r.json()["rules_version"] == r.json()["previous_version"]


async def test_health_and_readiness(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        r = await c.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {
        "database": True,
        "broker": True,
        "relay": True,
    }


def test_tables_include_delivery_tables() -> None:
    assert {TABLES.outbox.__tablename__, TABLES.inbox.__tablename__} == {"outbox", "inbox"}
