"""Visits (回访): scheduled after an agreement; two honoured close the case, one broken reopens."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from services.followup.main import create_app
from services.followup.settings import FollowupSettings
from shared.bus import InMemoryBus
from shared.clock import ManualClock
from tests.unit.followup.conftest import T0, TOPICS, Ledger

AGREED_AT = T0 + timedelta(hours=5)


async def test_an_agreement_schedules_visits_at_3_and_30_days_and_moves_to_follow_up(
    ledger: Ledger,
) -> None:
    await ledger.life("c1", "agreed")
    agreed = await ledger.agree("c1", AGREED_AT)
    body = (await ledger.get("/v1/cases/c1/visits")).json()
    assert body["status"] == "follow_up"
    assert [(v["number"], v["state"], v["due_at"]) for v in body["visits"]] == [
        (1, "scheduled", "2026-11-23T05:00:00Z"),
        (2, "scheduled", "2026-12-20T05:00:00Z"),
    ]
    [trail] = [e for e in ledger.events(TOPICS.trail, "trail.appended") if e.producer == "followup"]
    assert (trail.payload["from_status"], trail.payload["to_status"]) == ("agreed", "follow_up")
    assert trail.causation_id == agreed.event_id
    assert (await ledger.get("/v1/cases/c1")).json()["status"] == "follow_up"


async def test_the_same_agreement_delivered_twice_schedules_once(ledger: Ledger) -> None:
    await ledger.life("c1", "agreed")
    env = await ledger.agree("c1", AGREED_AT)
    await ledger.publish(TOPICS.mediation, env)
    await ledger.agree("c1", AGREED_AT)  # a new event id, same agreement
    assert len((await ledger.get("/v1/cases/c1/visits")).json()["visits"]) == 2
    assert len((await ledger.get("/v1/cases/c1/trail")).json()["entries"]) == 7


async def test_two_honoured_visits_close_the_case_and_announce_it(ledger: Ledger) -> None:
    await ledger.life("c1", "agreed")
    await ledger.agree("c1", AGREED_AT)
    # the first visit is recorded a day before it is due: allowed
    first = await ledger.visit("c1", honoured=True, satisfaction=4, method="visit")
    assert first.status_code == 201
    assert first.json()["case_status"] == "follow_up"
    assert first.json()["visit"]["number"] == 1
    assert ledger.events(TOPICS.followup, "case.closed") == []
    second = await ledger.visit("c1", honoured=True, satisfaction=5, method="wechat")
    assert second.json()["case_status"] == "closed"
    [closed] = ledger.events(TOPICS.followup, "case.closed")
    assert closed.case_id == "c1" and closed.payload["outcome"] == "agreement honoured"
    visits = (await ledger.get("/v1/cases/c1/visits")).json()
    assert visits["status"] == "closed"
    assert [
        (v["number"], v["state"], v["method"], v["honoured"], v["satisfaction"])
        for v in visits["visits"]
    ] == [(1, "done", "visit", True, 4), (2, "done", "wechat", True, 5)]
    late = await ledger.visit("c1", honoured=True)
    assert late.status_code == 409
    assert late.json() == {
        "detail": "the case is closed, not in follow-up",
        "errors": [],
        "status": "closed",
    }


async def test_a_broken_agreement_reopens_the_case_for_mediation(ledger: Ledger) -> None:
    await ledger.life("c1", "agreed")
    await ledger.agree("c1", AGREED_AT)
    r = await ledger.visit("c1", honoured=False, satisfaction=1, note="对方未按约付款")
    assert r.status_code == 201 and r.json()["case_status"] == "reopened"
    [reopened] = ledger.events(TOPICS.followup, "case.reopened")
    assert reopened.payload["visit_id"] == r.json()["visit"]["visit_id"]
    assert reopened.payload["reason"] == "visit found the agreement not honoured"
    assert ledger.events(TOPICS.followup, "case.closed") == []
    visits = (await ledger.get("/v1/cases/c1/visits")).json()["visits"]
    assert [v["state"] for v in visits] == ["done", "cancelled"]
    case = (await ledger.get("/v1/cases/c1")).json()
    assert (case["status"], case["reopen_count"]) == ("reopened", 1)
    assert (await ledger.visit("c1")).status_code == 409

    # mediation resumes and agrees again: a new round, counted afresh
    await ledger.trail("c1", "mediating", "reopened", at=T0 + timedelta(days=2))
    await ledger.trail("c1", "agreed", "mediating", at=T0 + timedelta(days=3))
    await ledger.agree("c1", T0 + timedelta(days=3), agreement_id="agr-2")
    visits = (await ledger.get("/v1/cases/c1/visits")).json()["visits"]
    assert [(v["round"], v["number"], v["state"]) for v in visits] == [
        (1, 1, "done"),
        (1, 2, "cancelled"),
        (2, 1, "scheduled"),
        (2, 2, "scheduled"),
    ]
    await ledger.visit("c1")
    assert (await ledger.visit("c1")).json()["case_status"] == "closed"
    assert (await ledger.get("/v1/cases/c1/trail/verify")).json()["valid"] is True


async def test_a_visit_on_a_case_not_in_follow_up_is_409(ledger: Ledger) -> None:
    await ledger.life("c1", "mediating")
    assert (await ledger.visit("c1")).status_code == 404  # no agreement known: nothing to visit
    await ledger.life("c2", "agreed")
    await ledger.agree("c2", AGREED_AT)
    await ledger.visit("c2", honoured=False)
    r = await ledger.visit("c2")
    assert r.status_code == 409 and r.json()["status"] == "reopened"


async def test_visit_input_is_checked_at_the_edge(ledger: Ledger) -> None:
    await ledger.life("c1", "agreed")
    await ledger.agree("c1", AGREED_AT)
    r = await ledger.visit("c1", method="fax", satisfaction=9)
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"method", "satisfaction"}
    assert "fax" not in r.text


async def test_notes_are_encrypted_at_rest_and_hidden_from_viewers(ledger: Ledger) -> None:
    await ledger.life("c1", "agreed")
    await ledger.agree("c1", AGREED_AT)
    await ledger.visit("c1", note="张三说钱已收到，电话13812345678")
    engine = ledger.app.state.runtime.engine
    async with engine.connect() as conn:
        stored = (
            await conn.execute(text("SELECT note_sealed FROM visits WHERE state = 'done'"))
        ).scalar_one()
        trail = (await conn.execute(text("SELECT details FROM trail"))).all()
        entries = (await conn.execute(text("SELECT details, reason FROM ledger_entries"))).all()
    assert "张三" not in stored and "13812345678" not in stored
    assert "张三" not in str(trail) + str(entries)
    admin = (await ledger.get("/v1/cases/c1/visits")).json()["visits"][0]
    assert admin["note"] == "张三说钱已收到，电话13812345678"
    viewer = (await ledger.get("/v1/cases/c1/visits", role="viewer")).json()["visits"][0]
    assert (viewer["note"], viewer["note_hidden"]) == (None, True)


async def test_due_visits_make_a_work_list(ledger: Ledger) -> None:
    for case_id, agreed_at in (("c1", AGREED_AT), ("c2", AGREED_AT + timedelta(days=2))):
        await ledger.life(case_id, "agreed")
        await ledger.agree(case_id, agreed_at)
    by_day_4 = (await ledger.get("/v1/visits/due", params={"by": "2026-11-24T00:00:00Z"})).json()
    assert [(v["case_id"], v["number"]) for v in by_day_4["items"]] == [("c1", 1)]
    ledger.clock.advance(timedelta(days=10))  # default: due by the clock's now
    now = (await ledger.get("/v1/visits/due")).json()
    assert [(v["case_id"], v["number"]) for v in now["items"]] == [("c1", 1), ("c2", 1)]
    assert now["items"][0]["channel"] == "people" and now["items"][0]["grid_code"] == "522731001"
    await ledger.visit("c1")
    now = (await ledger.get("/v1/visits/due")).json()
    assert [(v["case_id"], v["number"]) for v in now["items"]] == [("c2", 1)]


async def test_visit_offsets_come_from_settings(tmp_path: Path, memory_bus: InMemoryBus) -> None:
    settings = FollowupSettings(
        bus="memory",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/o.db",
        visit_offsets_days=[1, 7, 90],
    )
    app = create_app(settings, bus=memory_bus, clock=ManualClock(T0))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://f") as client:
            ledger = Ledger(app, memory_bus, ManualClock(T0), client)
            await ledger.agree("c1", AGREED_AT)
            visits = (await ledger.get("/v1/cases/c1/visits")).json()["visits"]
    assert [v["due_at"] for v in visits] == [
        "2026-11-21T05:00:00Z",
        "2026-11-27T05:00:00Z",
        "2027-02-18T05:00:00Z",
    ]


async def test_the_ledger_and_visits_survive_a_restart(
    tmp_path: Path, memory_bus: InMemoryBus
) -> None:
    settings = FollowupSettings(bus="memory", database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db")
    clock = ManualClock(T0 + timedelta(days=1))
    for round_ in (1, 2):
        bus = InMemoryBus()
        app = create_app(settings, bus=bus, clock=clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://f") as client:
                ledger = Ledger(app, bus, clock, client)
                if round_ == 1:
                    await ledger.life("c1", "agreed")
                    await ledger.agree("c1", AGREED_AT)
                    assert (await ledger.visit("c1")).json()["case_status"] == "follow_up"
                else:  # a new process: the second honoured visit still closes the case
                    assert (await ledger.visit("c1")).json()["case_status"] == "closed"
                    check = (await ledger.get("/v1/cases/c1/trail/verify")).json()
                    assert (check["valid"], check["entries"]) == (True, 9)
        await bus.stop()
