"""Follow-up on the real broker: trail entries in → the ledger; an agreement in → visits;
two honoured visits → case.closed out on Kafka, and the whole trail verifies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.followup.domain import ManualClock
from services.followup.main import create_app
from services.followup.settings import FollowupSettings
from shared.auth import StaffPrincipal, issue_token
from shared.bus import OutgoingMessage
from shared.contracts import REGISTRY, CaseAgreed, TrailAppended
from shared.events import Envelope, new_id, utcnow
from shared.topics import Topics

pytestmark = pytest.mark.kafka


async def _until(cond: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await cond()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)


async def test_ledger_and_visits_close_a_case_on_the_broker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = FollowupSettings(
        bus="kafka",
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        group_prefix=topic_prefix,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'f.db'}",
        relay_interval_s=0.1,
    )
    topics = Topics(topic_prefix)
    case_id, t0 = new_id(), utcnow() - timedelta(days=1)
    clock = ManualClock(t0 + timedelta(hours=8))
    details: dict[str, Any] = {
        "source": "grid",
        "source_ref": f"g-{case_id[:8]}",
        "dispute_type": "neighbour",
        "severity": "low",
        "channel": "people",
        "tier": "grid",
        "grid_code": "522731001",
        "deadlines": {"mediation_due": (t0 + timedelta(days=30)).isoformat()},
    }
    life = [
        (None, "received"),
        ("received", "triaged"),
        ("triaged", "assigned"),
        ("assigned", "accepted"),
        ("accepted", "mediating"),
        ("mediating", "agreed"),
    ]
    trail = [
        REGISTRY.event(
            TrailAppended(
                case_id=case_id,
                at=t0 + timedelta(hours=i),
                actor="system:it",
                action=to,
                from_status=frm,
                to_status=to,
                details=details if i < 2 else {},
            ),
            event_type="trail.appended",
            producer="it",
            case_id=case_id,
        )
        for i, (frm, to) in enumerate(life)
    ]
    agreed = REGISTRY.event(
        CaseAgreed(
            case_id=case_id,
            agreement_id="agr-1",
            terms="互相道歉",
            channel="people",
            tier="grid",
            agreed_at=t0 + timedelta(hours=5),
        ),
        event_type="case.agreed",
        producer="mediation",
        case_id=case_id,
    )
    admin = StaffPrincipal(subject="it-admin", role="admin")
    auth = {
        "Authorization": "Bearer " + issue_token(settings.jwt_secret, settings.jwt_audience, admin)
    }

    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://f", headers=auth
        ) as client:
            producer = AIOKafkaProducer(
                bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
            )
            await producer.start()
            try:
                for env in trail:
                    await producer.send_and_wait(topics.trail, env.to_bytes(), key=case_id.encode())
                await producer.send_and_wait(
                    topics.mediation, agreed.to_bytes(), key=case_id.encode()
                )
            finally:
                await producer.stop()

            async def in_follow_up() -> bool:
                r = await client.get(f"/v1/cases/{case_id}")
                return r.status_code == 200 and r.json()["status"] == "follow_up"

            await _until(in_follow_up)
            visits = (await client.get(f"/v1/cases/{case_id}/visits")).json()["visits"]
            assert [v["state"] for v in visits] == ["scheduled", "scheduled"]
            for satisfaction in (4, 5):
                r = await client.post(
                    f"/v1/cases/{case_id}/visits",
                    json={"method": "phone", "honoured": True, "satisfaction": satisfaction},
                )
                assert r.status_code == 201, r.text

            async def closed_in_ledger() -> bool:
                r = await client.get(f"/v1/cases/{case_id}")
                return bool(r.json()["status"] == "closed")

            await _until(closed_in_ledger)
            entries = (await client.get(f"/v1/cases/{case_id}/trail")).json()["entries"]
            assert [e["to_status"] for e in entries] == [
                "received",
                "triaged",
                "assigned",
                "accepted",
                "mediating",
                "agreed",
                "follow_up",
                "follow_up",
                "closed",
            ]
            assert (await client.get(f"/v1/cases/{case_id}/trail/verify")).json()["valid"]
            stats = (await client.get("/v1/stats")).json()
            assert stats["by_status"] == {"closed": 1}
            assert stats["satisfaction"] == {"mean": 5.0, "responses": 1}

    reader = AIOKafkaConsumer(
        topics.followup,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"{topic_prefix}closed-reader",
    )
    await reader.start()
    try:
        got: list[Envelope] = []

        async def closed_seen() -> bool:
            batches = await reader.getmany(timeout_ms=500)
            got.extend(Envelope.from_bytes(r.value) for rs in batches.values() for r in rs)
            return any(e.event_type == "case.closed" for e in got)

        await _until(closed_seen)
    finally:
        await reader.stop()
    [closed] = [e for e in got if e.event_type == "case.closed"]
    assert closed.case_id == case_id and closed.payload["outcome"] == "agreement honoured"
    assert closed.producer == "followup"


async def test_a_broken_agreement_sends_case_reopened_on_the_broker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = FollowupSettings(
        bus="kafka",
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        group_prefix=topic_prefix,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'f.db'}",
        relay_interval_s=0.1,
    )
    topics = Topics(topic_prefix)
    case_id = new_id()
    agreed = REGISTRY.event(
        CaseAgreed(
            case_id=case_id,
            agreement_id="agr-1",
            terms="按期还款",
            channel="court",
            tier="town",
            agreed_at=utcnow(),
        ),
        event_type="case.agreed",
        producer="mediation",
        case_id=case_id,
    )
    mediator = StaffPrincipal(subject="m1", role="mediator", channel="court")
    auth = {
        "Authorization": "Bearer "
        + issue_token(settings.jwt_secret, settings.jwt_audience, mediator)
    }
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://f", headers=auth
        ) as client:
            await app.state.runtime.bus.publish(
                [OutgoingMessage(topics.mediation, case_id, agreed.to_bytes())]
            )

            async def visit_recorded() -> Any:
                r = await client.post(
                    f"/v1/cases/{case_id}/visits",
                    json={"method": "visit", "honoured": False, "satisfaction": 1},
                )
                return r if r.status_code == 201 else None

            r = await _until(visit_recorded)
            assert r.json()["case_status"] == "reopened"

    reader = AIOKafkaConsumer(
        topics.followup,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"{topic_prefix}reopen-reader",
    )
    await reader.start()
    try:
        got: list[Envelope] = []

        async def reopened_seen() -> bool:
            batches = await reader.getmany(timeout_ms=500)
            got.extend(Envelope.from_bytes(r.value) for rs in batches.values() for r in rs)
            return any(e.event_type == "case.reopened" for e in got)

        await _until(reopened_seen)
    finally:
        await reader.stop()
    [reopened] = [e for e in got if e.event_type == "case.reopened"]
    assert reopened.case_id == case_id
    assert reopened.payload["visit_id"] == r.json()["visit"]["visit_id"]
    assert reopened.causation_id is None and reopened.producer == "followup"
