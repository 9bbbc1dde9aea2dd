"""Follow-up on the real broker: trail entries in → the ledger; an agreement in → visits;
two honoured visits → case.closed out on Kafka, and the whole trail verifies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.followup.main import create_app
from services.followup.settings import FollowupSettings
from shared.auth import StaffPrincipal, issue_token
from shared.bus import OutgoingMessage
from shared.clock import ManualClock
from shared.contracts import REGISTRY, CaseAgreed, TrailAppended
from shared.events import new_id, utcnow
from shared.topics import Topics
from tests.integration.kafka_helpers import publish, read_envelopes, until

pytestmark = pytest.mark.kafka


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
        "Authorization": "Bearer "
        + issue_token(settings.jwt_private_key, settings.jwt_audience, admin)
    }

    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://f", headers=auth
        ) as client:
            key = case_id.encode()
            await publish(
                kafka_bootstrap,
                [(topics.trail, key, env.to_bytes()) for env in trail]
                + [(topics.mediation, key, agreed.to_bytes())],
            )

            async def in_follow_up() -> bool:
                r = await client.get(f"/v1/cases/{case_id}")
                return r.status_code == 200 and r.json()["status"] == "follow_up"

            await until(in_follow_up)
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

            await until(closed_in_ledger)
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

    got = await read_envelopes(
        kafka_bootstrap,
        [topics.followup],
        f"{topic_prefix}closed-reader",
        lambda evs: any(e.event_type == "case.closed" for e in evs),
        dedupe=False,  # every copy: the event must have been sent once
    )
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
            organisation_id="court-town",
            mediator_id="m1",
        ),
        event_type="case.agreed",
        producer="mediation",
        case_id=case_id,
    )
    # only the mediator the case is assigned to records its visits (DOMAIN.md §7)
    mediator = StaffPrincipal(
        subject="m1", role="mediator", channel="court", organisation="court-town"
    )
    auth = {
        "Authorization": "Bearer "
        + issue_token(settings.jwt_private_key, settings.jwt_audience, mediator)
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

            r = await until(visit_recorded)
            assert r.json()["case_status"] == "reopened"

    got = await read_envelopes(
        kafka_bootstrap,
        [topics.followup],
        f"{topic_prefix}reopen-reader",
        lambda evs: any(e.event_type == "case.reopened" for e in evs),
        dedupe=False,  # every copy: the event must have been sent once
    )
    [reopened] = [e for e in got if e.event_type == "case.reopened"]
    assert reopened.case_id == case_id
    assert reopened.payload["visit_id"] == r.json()["visit"]["visit_id"]
    assert reopened.causation_id is None and reopened.producer == "followup"
