"""On the real broker: a case's trail entries arriving shuffled are applied in causal order by
the ledger (follow-up) and by the source feedback (intake)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from services.followup.main import create_app
from services.followup.settings import FollowupSettings
from shared.auth import AUDIENCES, StaffPrincipal, issue_token
from shared.events import new_id
from shared.topics import Topics
from tests.causal import LIFE, case_life, causal_position_ok, shuffled
from tests.integration.kafka_helpers import publish, until

pytestmark = pytest.mark.kafka


async def test_ledger_applies_shuffled_trails_in_causal_order_on_the_broker(
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
    lives = {case_id: case_life(case_id) for case_id in (new_id() for _ in range(3))}
    records = [
        (topics.trail, case_id.encode(), env.to_bytes())
        for seed, (case_id, life) in enumerate(lives.items())
        for env in shuffled(life, seed)
    ]
    admin = StaffPrincipal(subject="it-admin", role="admin")
    auth = {"Authorization": "Bearer " + issue_token(settings.jwt_private_key, AUDIENCES, admin)}
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://f", headers=auth
        ) as client:
            await publish(kafka_bootstrap, records)

            async def all_chained() -> bool:
                for case_id in lives:
                    r = await client.get(f"/v1/cases/{case_id}")
                    if r.status_code != 200 or r.json()["entries"] < len(LIFE):
                        return False
                return True

            await until(all_chained)
            for case_id, life in lives.items():
                case = (await client.get(f"/v1/cases/{case_id}")).json()
                assert case["status"] == "closed"
                trail = (await client.get(f"/v1/cases/{case_id}/trail")).json()["entries"]
                assert causal_position_ok([e["event_id"] for e in trail], life)
                verify = (await client.get(f"/v1/cases/{case_id}/trail/verify")).json()
                assert verify["valid"] is True


async def test_feedback_follows_causal_order_on_the_broker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    from services.intake.integrators import create_integrator
    from services.intake.main import create_app as intake_app
    from services.intake.settings import IntakeSettings
    from tests.integration.kafka_helpers import read_envelopes, read_records

    settings = IntakeSettings(
        bus="kafka",
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        group_prefix=topic_prefix,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'i.db'}",
        relay_interval_s=0.1,
    )
    topics = Topics(topic_prefix)
    app = intake_app(settings, configure_logs=False)
    async with app.router.lifespan_context(app):
        h = app.state.handlers
        key = (
            await create_integrator(h.delivery.sessions, h.cipher, name="it", source="12345")
        ).api_key
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://i") as client:
            r = await client.post(
                "/v1/reports",
                json={"source": "12345", "source_ref": "WO-C", "text": "邻居楼上漏水，双方争吵。"},
                headers={"X-API-Key": key},
            )
            assert r.status_code == 202, r.text
            case_id = r.json()["case_id"]
            [receive] = await read_envelopes(
                kafka_bootstrap,
                [topics.trail],
                f"{topic_prefix}reader",
                lambda evs: any(e.case_id == case_id for e in evs),
            )
            life = case_life(case_id, first=receive)
            await publish(
                kafka_bootstrap,
                [(topics.trail, case_id.encode(), e.to_bytes()) for e in shuffled(life, 0)],
            )
            transitions = [to for _, _, frm, to, _ in LIFE if frm != to]
            got = await read_records(
                kafka_bootstrap,
                [topics.feedback("12345")],
                lambda rs: len(rs) >= len(transitions),
            )
            assert [json.loads(r.value)["status"] for r in got] == transitions

            async def closed() -> bool:
                r = await client.get("/v1/reports/12345/WO-C", headers={"X-API-Key": key})
                return bool(r.json()["status"] == "closed")

            await until(closed)
