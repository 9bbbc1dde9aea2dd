"""Deadlines with a moved clock: marked overdue, one supervision notice per case and kind."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from services.mediation.channels.testing import TestChannel
from services.mediation.main import create_app
from shared.bus import InMemoryBus
from shared.clock import ManualClock
from tests.unit.mediation.conftest import DAY, Svc, make_settings


async def test_sign_for_overdue_raises_one_supervision(svc: Svc) -> None:
    cid = await svc.triaged()
    assert await svc.scan() == []
    svc.clock.advance(timedelta(hours=5))  # sign-for due after 4 hours
    raised = await svc.scan()
    assert [(r.case_id, r.kind) for r in raised] == [(cid, "sign_for_overdue")]
    assert await svc.scan() == []  # once per case and kind

    events = svc.events(svc.topics.mediation, cid, "supervision.raised")
    assert [(e.payload["kind"], e.payload["tier"], e.payload["channel"]) for e in events] == [
        ("sign_for_overdue", "town", "people")
    ]
    last = svc.trail(cid)[-1]
    assert (last["action"], last["from_status"], last["to_status"]) == (
        "supervise",
        "assigned",
        "assigned",
    )
    assert "签收超时" in last["reason"]
    case = await svc.case(cid)
    assert case["sign_for_overdue"] is True and case["mediation_overdue"] is False

    r = await svc.client.get("/v1/supervisions", headers=svc.token("coordinator-town"))
    assert [(s["case_id"], s["kind"]) for s in r.json()["items"]] == [(cid, "sign_for_overdue")]
    r = await svc.client.get("/v1/supervisions", headers=svc.token("coordinator-county"))
    assert r.json()["items"] == []
    r = await svc.client.get(
        "/v1/mediation/cases?overdue=true", headers=svc.token("med-people-town-day")
    )
    assert [c["case_id"] for c in r.json()["items"]] == [cid]


async def test_mediation_overdue_after_signing_for(svc: Svc) -> None:
    cid = await svc.triaged()
    await svc.act(cid, "accept", "med-people-town-day")
    svc.clock.advance(timedelta(days=2))
    assert await svc.scan() == []  # signed for in time; mediation has 30 days
    svc.clock.advance(timedelta(days=29))
    raised = await svc.scan()
    assert [(r.case_id, r.kind) for r in raised] == [(cid, "mediation_overdue")]
    case = await svc.case(cid)
    assert case["mediation_overdue"] is True and case["sign_for_overdue"] is False


async def test_agreed_case_is_not_supervised_and_late_signing_is_recorded(svc: Svc) -> None:
    cid = await svc.triaged()
    me = "med-people-town-day"
    svc.clock.advance(timedelta(hours=6))
    await svc.act(cid, "accept", me)
    assert svc.trail(cid)[-1]["details"]["signed_on_time"] is False
    await svc.act(cid, "notes", me, {"text": "调解"}, expect=201)
    await svc.act(cid, "agreement", me, {"terms": "和解"}, expect=201)
    svc.clock.advance(timedelta(days=60))
    assert await svc.scan() == []


async def test_deadlines_survive_a_restart(svc: Svc) -> None:
    """The deadline is a stored column: a fresh context reads it back and raises on time."""
    cid = await svc.triaged()
    from services.mediation.assignment import Context
    from services.mediation.supervision import scan_overdue

    fresh = Context(
        svc.settings, svc.ctx.delivery, svc.topics, svc.clock, svc.ctx.channels, svc.ctx.cipher
    )
    svc.clock.advance(timedelta(hours=5))
    raised = await scan_overdue(fresh)
    assert [(r.case_id, r.kind) for r in raised] == [(cid, "sign_for_overdue")]


async def test_admin_can_trigger_a_scan_over_http(svc: Svc) -> None:
    cid = await svc.triaged()
    svc.clock.advance(timedelta(hours=5))
    r = await svc.client.post("/v1/admin/supervision/scan", headers=svc.token("admin"))
    assert r.json() == {"raised": [{"case_id": cid, "kind": "sign_for_overdue"}]}
    r = await svc.client.post("/v1/admin/supervision/scan", headers=svc.token("coordinator-town"))
    assert r.status_code == 403


async def test_escalated_case_gets_a_new_sign_for_deadline_but_no_second_notice(svc: Svc) -> None:
    cid = await svc.triaged(tier="grid")
    svc.clock.advance(timedelta(hours=5))
    assert len(await svc.scan()) == 1
    me = "med-people-grid-day"
    await svc.act(cid, "accept", me)
    await svc.act(cid, "notes", me, {"text": "调解"}, expect=201)
    await svc.act(cid, "failure", me, {"reason": "不成"})
    before = await svc.case(cid)
    await svc.act(cid, "escalate", me, {"reason": "上交"})
    case = await svc.case(cid)
    assert case["tier"] == "town" and case["sign_for_overdue"] is False
    assert case["sign_for_due"] > before["sign_for_due"]
    svc.clock.advance(timedelta(hours=5))
    assert await svc.scan() == []  # once per case and kind
    assert (await svc.case(cid))["sign_for_overdue"] is True


async def test_the_lifespan_scanner_raises_notices_by_itself(
    tmp_path: Path, seeded: tuple[Path, list[dict[str, Any]]]
) -> None:
    settings = make_settings(tmp_path).model_copy(update={"scan_interval_s": 0.05})
    shutil.copy(seeded[0], tmp_path / "m.db")
    clock, bus = ManualClock(DAY), InMemoryBus()
    app = create_app(settings, bus=bus, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as client,
    ):
        svc = Svc(
            app,
            client,
            bus,
            clock,
            settings,
            {e["staff_id"]: e for e in seeded[1]},
            TestChannel(),
        )
        cid = await svc.triaged()
        clock.advance(timedelta(hours=5))
        for _ in range(200):  # the scanner runs on its own; wait for its outcome
            r = await client.get("/v1/supervisions", headers=svc.token("admin"))
            if r.json()["items"]:
                break
            await asyncio.sleep(0.05)
        assert [(s["case_id"], s["kind"]) for s in r.json()["items"]] == [(cid, "sign_for_overdue")]


async def test_the_scan_reads_only_cases_past_a_deadline_not_yet_flagged(svc: Svc) -> None:
    from zoneinfo import ZoneInfo

    from services.mediation.domain import MEDIATION_PENDING, SIGN_FOR_PENDING
    from services.mediation.repository import cases_to_scan

    cid = await svc.triaged()  # sign-for due in 4 hours, mediation in 30 days
    # another open case, not late within the day
    await svc.triaged(tier="grid", sign_for_due=svc.clock.now() + timedelta(days=1))

    async def candidates(hours: float, tz: str = "UTC") -> list[str]:
        at = (svc.clock.now() + timedelta(hours=hours)).astimezone(ZoneInfo(tz))
        async with svc.ctx.delivery.sessions() as session:
            return await cases_to_scan(
                session, at, sorted(SIGN_FOR_PENDING), sorted(MEDIATION_PENDING)
            )

    assert await candidates(3) == [] and await candidates(3, "Asia/Shanghai") == []
    assert await candidates(5) == [cid] and await candidates(5, "Asia/Shanghai") == [cid]
    svc.clock.advance(timedelta(hours=5))
    assert [r.case_id for r in await svc.scan()] == [cid]
    assert await candidates(0) == []  # flagged: read no more until mediation runs late
