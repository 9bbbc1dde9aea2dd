"""Mediation on the real broker: a routed case in, assigned, signed for, mediated and agreed
over HTTP, and case.agreed plus the trail out on Kafka, in order."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.mediation.main import create_app
from services.mediation.seed import seed_demo
from services.mediation.settings import MediationSettings
from shared.contracts import REGISTRY, CaseTriaged
from shared.events import Envelope, new_id, utcnow
from shared.topics import Topics
from tests.integration.kafka_helpers import publish, read_envelopes, until

pytestmark = pytest.mark.kafka


async def test_triaged_case_is_assigned_agreed_and_trailed_on_the_broker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = MediationSettings(
        bus="kafka",
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        group_prefix=topic_prefix,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        relay_interval_s=0.1,
        scan_interval_s=0,
    )
    staff = {e["staff_id"]: e for e in await seed_demo(settings)}
    topics = Topics(topic_prefix)
    app = create_app(settings)
    case_id, now = new_id(), utcnow()
    # a town-tier people's mediation case, routed by triage
    triaged = CaseTriaged(
        case_id=case_id,
        source="12345",
        source_ref=f"w-{case_id[:8]}",
        dispute_type="neighbour",
        severity="medium",
        channel="people",
        tier="town",
        rule_id="R7",
        rules_version="it",
        sign_for_due=now + timedelta(hours=4),
        mediation_due=now + timedelta(days=30),
        grid_code="522731001002",
        text="邻里噪音纠纷",
    )
    env = REGISTRY.event(triaged, event_type="case.triaged", producer="triage", case_id=case_id)

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
            await publish(kafka_bootstrap, [(topics.triaged, case_id.encode(), env.to_bytes())])

            # mediators work during the day; the real clock may be at night, so the case
            # may sit in the organisation's queue: any mediator of it may take it
            async def assigned() -> dict[str, Any] | None:
                r = await client.get(f"/v1/mediation/cases/{case_id}", headers=admin)
                return r.json() if r.status_code == 200 else None

            admin = {"Authorization": "Bearer " + _admin_token(settings)}
            case = await until(assigned)
            assert (case["status"], case["organisation_id"]) == ("assigned", "people-town")
            who = case["mediator_id"] or "med-people-town-day"
            h = {"Authorization": f"Bearer {staff[who]['token']}"}
            r = await client.post(f"/v1/cases/{case_id}/accept", headers=h)
            assert r.status_code == 200, r.text
            r = await client.post(
                f"/v1/cases/{case_id}/notes", headers=h, json={"text": "双方到社区面谈"}
            )
            assert r.status_code == 201, r.text
            r = await client.post(
                f"/v1/cases/{case_id}/agreement",
                headers=h,
                json={"terms": "晚十点后不再装修", "amount_yuan": 0},
            )
            assert r.status_code == 201, r.text

    # everything the service published, read back from the broker
    def complete(seen: list[Envelope]) -> bool:
        return (
            any(e.event_type == "case.agreed" for e in seen)
            and sum(e.event_type == "trail.appended" for e in seen) >= 4
        )

    seen = await read_envelopes(
        kafka_bootstrap, [topics.mediation, topics.trail], f"{topic_prefix}reader", complete
    )
    unique = {e.event_id: e for e in seen}  # delivery is at least once: dedupe by event id
    mine = [e for e in unique.values() if e.case_id == case_id]
    trail = [e.payload for e in mine if e.event_type == "trail.appended"]
    assert [(t["action"], t["from_status"], t["to_status"]) for t in trail] == [
        ("assign", "triaged", "assigned"),
        ("accept", "assigned", "accepted"),
        ("note", "accepted", "mediating"),
        ("agree", "mediating", "agreed"),
    ]
    assert [t["at"] for t in trail] == sorted(t["at"] for t in trail)
    agreed = [e for e in mine if e.event_type == "case.agreed"]
    assert len(agreed) == 1
    assert agreed[0].payload["organisation_id"] == "people-town"
    assert agreed[0].correlation_id  # carried through from the cause
    # the agreement's trail entry and case.agreed were written in the same transaction
    assert trail[-1]["details"]["agreement_id"] == agreed[0].payload["agreement_id"]


def _admin_token(settings: MediationSettings) -> str:
    from services.mediation.staff import issue_admin_token

    return issue_admin_token(settings)


async def test_returned_overdue_failed_escalated_and_transferred_on_the_broker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A case returned (case.returned out), re-routed (case.triaged in), left unsigned past its
    deadline (supervision.raised out, moved clock), failed, escalated and transferred."""
    from shared.clock import ManualClock

    settings = MediationSettings(
        bus="kafka",
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        group_prefix=topic_prefix,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        relay_interval_s=0.1,
        scan_interval_s=0,
    )
    staff = {e["staff_id"]: e for e in await seed_demo(settings)}
    topics = Topics(topic_prefix)
    start = utcnow().replace(hour=2, minute=0)  # 10:00 in Shanghai: the day shift is on
    clock = ManualClock(start)
    app = create_app(settings, clock=clock)
    case_id = new_id()

    def decision(channel: str, tier: str, attempt: int) -> bytes:
        ev = CaseTriaged(
            case_id=case_id,
            source="grid",
            source_ref=f"g-{case_id[:8]}",
            dispute_type="debt_contract",
            severity="low",
            channel=channel,
            tier=tier,
            rule_id="R7",
            rules_version="it",
            sign_for_due=clock.now() + timedelta(hours=24),
            mediation_due=clock.now() + timedelta(days=30),
            attempt=attempt,
            grid_code="522731001001",
            text="借款未还",
        )
        env = REGISTRY.event(ev, event_type="case.triaged", producer="triage", case_id=case_id)
        return env.to_bytes()

    def h(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {staff[who]['token']}"}

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
            admin = {"Authorization": "Bearer " + _admin_token(settings)}

            async def status_is(status: str, channel: str) -> bool:
                r = await client.get(f"/v1/mediation/cases/{case_id}", headers=admin)
                return r.status_code == 200 and (r.json()["status"], r.json()["channel"]) == (
                    status,
                    channel,
                )

            key = case_id.encode()
            await publish(kafka_bootstrap, [(topics.triaged, key, decision("people", "grid", 1))])
            await until(lambda: status_is("assigned", "people"))
            r = await client.post(
                f"/v1/cases/{case_id}/return",
                headers=h("med-people-grid-day"),
                json={"reason": "涉及合同金额，应走诉调"},
            )
            assert r.status_code == 200, r.text
            # triage re-routes to the court channel
            await publish(kafka_bootstrap, [(topics.triaged, key, decision("court", "grid", 2))])
            await until(lambda: status_is("assigned", "court"))

            clock.advance(timedelta(hours=25))  # nobody signed for it in time
            r = await client.post("/v1/admin/supervision/scan", headers=admin)
            assert r.json()["raised"] == [{"case_id": case_id, "kind": "sign_for_overdue"}]
            me = "med-court-grid-day"
            for action, body in (
                ("accept", None),
                ("notes", {"text": "组织调解"}),
                ("failure", {"reason": "被申请人拒不到场"}),
            ):
                r = await client.post(f"/v1/cases/{case_id}/{action}", headers=h(me), json=body)
                assert r.status_code in (200, 201), r.text
            r = await client.post(
                f"/v1/cases/{case_id}/escalate",
                headers=h("coordinator-grid"),
                json={"reason": "网格调解不成"},
            )
            assert r.status_code == 200, r.text
            town = "med-court-town-day"
            for action, body in (
                ("accept", None),
                ("notes", {"text": "乡镇诉调对接"}),
                ("failure", {"reason": "仍不成"}),
                ("transfer", {"target": "litigation", "reason": "引导诉讼"}),
            ):
                r = await client.post(f"/v1/cases/{case_id}/{action}", headers=h(town), json=body)
                assert r.status_code in (200, 201), r.text
            assert r.json()["status"] == "transferred"

    expected = [
        ("assign", "triaged", "assigned"),
        ("return", "assigned", "returned"),
        ("assign", "triaged", "assigned"),
        ("supervise", "assigned", "assigned"),
        ("accept", "assigned", "accepted"),
        ("note", "accepted", "mediating"),
        ("fail", "mediating", "failed"),
        ("escalate", "failed", "escalated"),
        ("assign", "escalated", "assigned"),
        ("accept", "assigned", "accepted"),
        ("note", "accepted", "mediating"),
        ("fail", "mediating", "failed"),
        ("transfer", "failed", "transferred"),
    ]

    def trail_of(events: list[Envelope]) -> list[tuple[str, str, str]]:
        return [
            (e.payload["action"], e.payload["from_status"], e.payload["to_status"])
            for e in events
            if e.event_type == "trail.appended" and e.case_id == case_id
        ]

    events = await read_envelopes(
        kafka_bootstrap,
        [topics.trail, topics.mediation],
        f"{topic_prefix}reader",
        lambda evs: len(trail_of(evs)) >= len(expected),
    )
    assert trail_of(events) == expected
    out = [
        (e.event_type, e.payload.get("kind") or e.payload.get("channel"))
        for e in events
        if e.event_type in ("case.returned", "supervision.raised")
    ]
    assert out == [("case.returned", "people"), ("supervision.raised", "sign_for_overdue")]
