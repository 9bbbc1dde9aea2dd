"""Mediation on PostgreSQL (queries, JSON columns, time zones): assign, act, supervise, list."""

from __future__ import annotations

from datetime import timedelta

import httpx

from services.mediation.channels import default_channels
from services.mediation.channels.testing import TestChannel
from services.mediation.main import create_app
from services.mediation.seed import seed_demo
from services.mediation.settings import MediationSettings
from shared.bus import InMemoryBus
from shared.clock import ManualClock
from tests.unit.mediation.conftest import DAY, Svc


async def test_a_case_lives_through_mediation_on_postgres(pg_url: str) -> None:
    settings = MediationSettings(
        bus="memory", database_url=pg_url, topic_prefix="u.", group_prefix="u.", scan_interval_s=0
    )
    staff = {e["staff_id"]: e for e in await seed_demo(settings)}
    clock, bus = ManualClock(DAY), InMemoryBus()
    people = TestChannel(code="people", transfer_targets=("litigation",))
    channels = default_channels()
    channels.register(people)
    app = create_app(settings, bus=bus, clock=clock, channels=channels)
    async with app.router.lifespan_context(app):
        await app.state.runtime.relay.stop()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
            svc = Svc(app, client, bus, clock, settings, staff, people)
            cid = await svc.triaged(co_channels=["police"])
            other = await svc.triaged(channel="labour", dispute_type="labour")
            clock.advance(timedelta(hours=5))
            raised = sorted((r.case_id, r.kind) for r in await svc.scan())
            assert raised == sorted([(cid, "sign_for_overdue"), (other, "sign_for_overdue")])
            assert await svc.scan() == []
            me = "med-people-town-day"
            await svc.act(cid, "accept", me)
            await svc.act(cid, "notes", me, {"text": "调解"}, expect=201)
            await svc.act(cid, "agreement", me, {"terms": "和解", "amount_yuan": 500}, expect=201)
            r = await client.get("/v1/mediation/cases", headers=svc.token(me))
            assert [c["case_id"] for c in r.json()["items"]] == [cid]
            r = await client.get("/v1/mediation/cases", headers=svc.token("med-police-town-day"))
            assert [c["case_id"] for c in r.json()["items"]] == [cid]
            r = await client.get("/v1/supervisions", headers=svc.token("coordinator-town"))
            assert sorted(s["case_id"] for s in r.json()["items"]) == sorted([cid, other])
            assert [t["action"] for t in svc.trail(cid)] == [
                "assign",
                "supervise",
                "accept",
                "note",
                "agree",
            ]
