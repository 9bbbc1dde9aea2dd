"""The review queue on the in-memory bus: doubtful decisions, confirmation, correction, export."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from services.triage.cli import main as cli_main
from services.triage.corrections import export_corrections
from services.triage.main import create_app
from services.triage.repository import TriageDecisionRow, TriageReview
from services.triage.settings import TriageSettings
from shared.auth import StaffPrincipal, issue_token
from shared.bus import InMemoryBus

from .test_triage_service import TOPICS, events, flush, publish, received, repeated

# a weapon named, nobody said to handle it: the rules are unsure
DOUBTFUL = "两家为排水沟争执，他家门后放着一把柴刀，邻居有些担心"
CLEAR = "楼上邻居每天深夜噪音扰民，协商无果。"


@pytest.fixture
async def app(tmp_path: Path, memory_bus: InMemoryBus) -> AsyncIterator[FastAPI]:
    settings = TriageSettings(bus="memory", database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db")
    app = create_app(settings, bus=memory_bus)
    async with app.router.lifespan_context(app):
        yield app


def _token(app: FastAPI, principal: StaffPrincipal) -> dict[str, str]:
    s = app.state.settings
    return {"Authorization": f"Bearer {issue_token(s.jwt_private_key, s.jwt_audience, principal)}"}


COUNTY = StaffPrincipal("county-1", "coordinator", tier="county", grid_codes=("5201",))


async def _report(app: FastAPI, bus: InMemoryBus, case_id: str, text: str) -> None:
    await publish(bus, TOPICS.reports, received(case_id, text, grid_code="520102003"))
    await flush(app)


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_doubtful_decision_is_flagged_everywhere(
    app: FastAPI, memory_bus: InMemoryBus
) -> None:
    await _report(app, memory_bus, "d1", DOUBTFUL)
    await _report(app, memory_bus, "d2", CLEAR)
    by_case = {e.case_id: e.payload for e in events(memory_bus, TOPICS.triaged, "case.triaged")}
    assert by_case["d1"]["review"] is True and by_case["d1"]["review_cues"]
    assert by_case["d2"]["review"] is False and by_case["d2"]["review_cues"] == []
    trail = {e.case_id: e.payload for e in events(memory_bus, TOPICS.trail, "trail.appended")}
    assert trail["d1"]["details"]["review"] is True
    async with app.state.runtime.sessions() as s:
        rows = {r.case_id: r for r in (await s.exec(select(TriageDecisionRow))).all()}
    assert rows["d1"].decision["review"] is True and rows["d1"].decision["review_cues"]
    async with _client(app) as c:
        r = await c.get("/v1/triage/review", headers=_token(app, COUNTY))
    [item] = r.json()["reviews"]
    assert item["case_id"] == "d1" and item["review_cues"] and item["overdue"] is False
    assert item["text"] == DOUBTFUL and item["source_ref"] == "r-d1"
    assert item["confirm_due"] > item["created_at"]


async def test_queue_is_for_county_coordinators_in_their_area(
    app: FastAPI, memory_bus: InMemoryBus
) -> None:
    await _report(app, memory_bus, "d1", DOUBTFUL)
    town = StaffPrincipal("t", "coordinator", tier="town", grid_codes=("5201",))
    elsewhere = StaffPrincipal("e", "coordinator", tier="county", grid_codes=("4401",))
    mediator = StaffPrincipal("m", "mediator", channel="people")
    async with _client(app) as c:
        assert (await c.get("/v1/triage/review")).status_code == 401
        r = await c.get("/v1/triage/review", headers=_token(app, town))
        assert r.status_code == 403
        r = await c.get("/v1/triage/review", headers=_token(app, mediator))
        assert r.status_code == 403
        r = await c.get("/v1/triage/review", headers=_token(app, elsewhere))
        assert r.json()["reviews"] == []
        r = await c.post(
            "/v1/triage/cases/d1/review", json={"confirm": True}, headers=_token(app, elsewhere)
        )
        assert r.status_code == 404


async def test_confirmation_is_a_trail_entry_and_closes_the_review(
    app: FastAPI, memory_bus: InMemoryBus
) -> None:
    await _report(app, memory_bus, "d1", DOUBTFUL)
    async with _client(app) as c:
        r = await c.post(
            "/v1/triage/cases/d1/review", json={"confirm": True}, headers=_token(app, COUNTY)
        )
        again = await c.post(
            "/v1/triage/cases/d1/review", json={"confirm": True}, headers=_token(app, COUNTY)
        )
        queue = await c.get("/v1/triage/review", headers=_token(app, COUNTY))
    await flush(app)
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    assert again.status_code == 409
    assert queue.json()["reviews"] == []
    last = events(memory_bus, TOPICS.trail, "trail.appended")[-1].payload
    assert last["action"] == "review_confirm" and last["actor"] == "county-1"
    assert len(events(memory_bus, TOPICS.triaged, "case.triaged")) == 1  # nothing re-routed


async def test_correction_reroutes_and_says_who_why_from_to(
    app: FastAPI, memory_bus: InMemoryBus
) -> None:
    await _report(app, memory_bus, "d1", DOUBTFUL)
    body = {
        "severity": "critical",
        "dispute_type": "neighbour",
        "note": "电话回访：他拿着刀在门口，邻居电话13812345678",
    }
    async with _client(app) as c:
        r = await c.post("/v1/triage/cases/d1/review", json=body, headers=_token(app, COUNTY))
    await flush(app)
    out = r.json()
    assert r.status_code == 200 and out["status"] == "corrected" and out["rerouted"] is True
    assert out["to"]["severity"] == "critical" and out["to"]["tier"] == "county"
    assert out["to"]["channel"] == "police" and out["from"]["tier"] != "county"
    first, second = [e.payload for e in events(memory_bus, TOPICS.triaged, "case.triaged")]
    assert second["attempt"] == first["attempt"] + 1
    assert second["correction"]["by"] == "county-1" and second["review"] is False
    assert second["correction"]["from"]["severity"] == first["severity"]
    trail = events(memory_bus, TOPICS.trail, "trail.appended")[-1].payload
    assert trail["action"] == "review_correct" and trail["actor"] == "county-1"
    assert "13812345678" not in json.dumps(trail, ensure_ascii=False)
    assert (
        "电话回访" in trail["reason"] and trail["details"]["correction"]["to"]["tier"] == "county"
    )
    async with app.state.runtime.sessions() as s:
        [review] = (await s.exec(select(TriageReview))).all()
        buf = io.StringIO()
        assert await export_corrections(s, buf) == 1
    assert review.status == "corrected" and review.resolved_by == "county-1"
    [line] = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert line["text"] == DOUBTFUL and line["source_ref"] == "r-d1"
    assert line["expected"] == {
        "dispute_type": "neighbour",
        "severity": "critical",
        "channel": "police",
        "tier": "county",
    }
    assert "电话回访" in line["why"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "confirm"),
        ({"confirm": True, "severity": "high", "note": "x"}, "confirm"),
        ({"severity": "high"}, "note"),
        ({"severity": "purple", "note": "x"}, "severity"),
        ({"dispute_type": "ufo", "note": "x"}, "dispute_type"),
    ],
)
async def test_bad_verdicts_name_the_field(
    app: FastAPI, memory_bus: InMemoryBus, body: dict[str, object], field: str
) -> None:
    await _report(app, memory_bus, "d1", DOUBTFUL)
    async with _client(app) as c:
        r = await c.post("/v1/triage/cases/d1/review", json=body, headers=_token(app, COUNTY))
    assert r.status_code == 422
    assert field in json.dumps(r.json(), ensure_ascii=False)


async def test_a_note_with_a_nul_character_is_refused_and_the_review_stays(
    app: FastAPI, memory_bus: InMemoryBus
) -> None:
    """The note goes into the review row and the trail: on PostgreSQL a NUL character in it failed
    the commit with a 500. It is a 422 naming the note, and the review still waits."""
    await _report(app, memory_bus, "d1", DOUBTFUL)
    async with _client(app) as c:
        for body in (
            {"confirm": True, "note": "确认\x00"},
            {"severity": "high", "note": "更正\x00"},
        ):
            r = await c.post("/v1/triage/cases/d1/review", json=body, headers=_token(app, COUNTY))
            assert r.status_code == 422, r.text
            assert r.json()["errors"] == [
                {"field": "note", "reason": "Value error, contains a NUL character"}
            ]
        queue = await c.get("/v1/triage/review", headers=_token(app, COUNTY))
    assert [q["case_id"] for q in queue.json()["reviews"]] == ["d1"]


async def test_cli_exports_corrections_from_the_service_database(
    app: FastAPI, memory_bus: InMemoryBus, capsys: pytest.CaptureFixture[str]
) -> None:
    await _report(app, memory_bus, "d1", DOUBTFUL)
    body = {"severity": "critical", "note": "核实：他拿着菜刀"}
    async with _client(app) as c:
        r = await c.post("/v1/triage/cases/d1/review", json=body, headers=_token(app, COUNTY))
    assert r.status_code == 200
    url = app.state.settings.database_url
    assert await asyncio.to_thread(cli_main, ["corrections", "--database-url", url]) == 0
    out = capsys.readouterr()
    [line] = [json.loads(x) for x in out.out.splitlines()]
    assert line["expected"]["severity"] == "critical" and "1 labelled examples" in out.err


async def test_a_newer_decision_supersedes_the_pending_review(
    app: FastAPI, memory_bus: InMemoryBus
) -> None:
    await _report(app, memory_bus, "d1", DOUBTFUL)
    repeat = repeated("d1", DOUBTFUL, repeat_count=3)
    await publish(memory_bus, TOPICS.reports, repeat)
    await flush(app)
    async with app.state.runtime.sessions() as s:
        statuses = [r.status for r in (await s.exec(select(TriageReview))).all()]
    # the repeat raised severity and decided again: one review waits, the old one is superseded
    assert statuses.count("pending") == 1 and "superseded" in statuses
    async with _client(app) as c:
        r = await c.get("/v1/triage/review", headers=_token(app, COUNTY))
    assert [x["case_id"] for x in r.json()["reviews"]] == ["d1"]
