"""Triage in consumer batches: new cases, decisions and reviews written by Core at the batch's
commit, later events of the batch see them, a duplicate counts once, a poison event fails
alone; the scope projection in batches."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlmodel import select

from services.triage.case_scope import CONSUMER
from services.triage.main import create_app
from services.triage.repository import (
    REVIEW_COLUMNS,
    NewCase,
    TriageCase,
    TriageCaseScope,
    TriageDecisionRow,
    TriageReview,
)
from services.triage.settings import TriageSettings
from shared.bus import InMemoryBus, OutgoingMessage
from shared.contracts import REGISTRY, TrailAppended
from shared.events import Envelope, utcnow
from shared.topics import Topics

from .test_review_queue import DOUBTFUL
from .test_triage_service import TOPICS, events, flush, received, repeated, returned


@pytest.fixture
async def app(tmp_path: Path, memory_bus: InMemoryBus) -> AsyncIterator[FastAPI]:
    settings = TriageSettings(bus="memory", database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db")
    app = create_app(settings, bus=memory_bus)
    async with app.router.lifespan_context(app):
        yield app


async def _one_batch(bus: InMemoryBus, topic: str, envs: list[Envelope]) -> None:
    """Queue the events together (one partition batch, one transaction) and wait."""
    await bus.publish([OutgoingMessage(topic, e.case_id, e.to_bytes()) for e in envs])
    await bus.drain()


async def _rows(app: FastAPI, model: Any) -> list[Any]:
    async with app.state.runtime.sessions() as s:
        return list((await s.exec(select(model))).all())


def test_a_new_case_has_the_stored_cases_columns_and_defaults() -> None:
    columns = TriageCase.__table__.columns  # type: ignore[attr-defined]
    fields = {f.name: f for f in dataclasses.fields(NewCase) if f.name != "row"}
    assert set(fields) == set(columns.keys())
    for name, f in fields.items():
        default = columns[name].default
        if f.default is not dataclasses.MISSING and default is not None and default.is_scalar:
            assert f.default == default.arg, name
    review_columns = TriageReview.__table__.columns.keys()  # type: ignore[attr-defined]
    assert set(REVIEW_COLUMNS) == set(review_columns) - {"id"}


async def test_a_case_received_repeated_and_returned_in_one_batch(
    app: FastAPI, memory_bus: InMemoryBus, caplog: pytest.LogCaptureFixture
) -> None:
    """Each later event of the batch finds the case (not written yet) and its queued review."""
    env = received("b1", DOUBTFUL, source="grid", grid_code="520102003")
    repeat = repeated("b1", DOUBTFUL, repeat_count=3)
    await _one_batch(memory_bus, TOPICS.reports, [env, env, repeat])  # the duplicate once
    await flush(app)
    assert "batch failed" not in caplog.text  # in the batch, not by the one-by-one replay
    # the repeat raised severity: its decision supersedes the review queued before it
    reviews = sorted(await _rows(app, TriageReview), key=lambda r: r.attempt)
    assert [(r.attempt, r.status) for r in reviews] == [(1, "superseded"), (2, "pending")]
    first = events(memory_bus, TOPICS.triaged, "case.triaged")[-1].payload
    back = returned("b1", first["channel"])
    other = received("b2", DOUBTFUL, source="grid", grid_code="520102003")
    await _one_batch(memory_bus, TOPICS.mediation, [back])
    await _one_batch(memory_bus, TOPICS.reports, [other, other])
    await flush(app)
    [case, case2] = sorted(await _rows(app, TriageCase), key=lambda c: c.case_id)
    assert (case.case_id, case.repeat_count, case.return_count, case.attempt) == ("b1", 3, 1, 3)
    assert case.excluded_channels == [first["channel"]] and case.channel != first["channel"]
    assert case2.attempt == 1 and case2.text == DOUBTFUL and case2.parties == []
    decisions = await _rows(app, TriageDecisionRow)
    assert sorted((d.case_id, d.attempt) for d in decisions) == [
        ("b1", 1),
        ("b1", 2),
        ("b1", 3),
        ("b2", 1),
    ]
    reviews = {(r.case_id, r.attempt): r for r in await _rows(app, TriageReview)}
    assert reviews[("b1", 1)].status == "superseded" and reviews[("b1", 1)].resolved_at
    assert all(r.cues and r.confirm_due > r.created_at for r in reviews.values())
    assert [r.status for k, r in sorted(reviews.items()) if k[0] == "b1"][-1] == "pending"
    assert reviews[("b2", 1)].status == "pending"
    trail = [e.payload for e in events(memory_bus, TOPICS.trail, "trail.appended")]
    assert [(t["case_id"], t["action"], t["details"]["attempt"]) for t in trail] == [
        ("b1", "triage", 1),
        ("b1", "retriage", 2),
        ("b1", "reroute", 3),
        ("b2", "triage", 1),
    ]


async def test_a_poison_report_fails_alone_and_its_neighbours_are_stored_once(
    app: FastAPI, memory_bus: InMemoryBus
) -> None:
    good = [received(f"p{i}", "楼上邻居每天深夜噪音扰民，协商无果。") for i in range(3)]
    bad = received("px", "楼上漏水")
    bad.payload["source_ref"] = None  # the envelope parses, the payload does not
    await _one_batch(memory_bus, TOPICS.reports, [good[0], bad, good[1], good[2]])
    await flush(app)
    assert sorted(c.case_id for c in await _rows(app, TriageCase)) == ["p0", "p1", "p2"]
    assert sorted(d.case_id for d in await _rows(app, TriageDecisionRow)) == ["p0", "p1", "p2"]
    dead = memory_bus.log[Topics.dlq(TOPICS.reports)]
    assert [Envelope.from_bytes(m.value).event_id for m in dead] == [bad.event_id]


def _entry(case_id: str, action: str, **details: Any) -> Envelope:
    return REGISTRY.event(
        TrailAppended(
            case_id=case_id,
            at=utcnow(),
            actor="system:mediation",
            action=action,
            from_status="assigned",
            to_status="assigned",
            details=details,
        ),
        event_type="trail.appended",
        producer="mediation",
        case_id=case_id,
    )


async def test_the_scope_projection_in_batches_and_replayed(
    app: FastAPI, memory_bus: InMemoryBus, caplog: pytest.LogCaptureFixture
) -> None:
    receive = _entry("s1", "receive", grid_code="520102003", source="grid")
    assign = _entry("s1", "assign", tier="town", channel="people", organisation_id="o1")
    same = _entry("s1", "accept", tier="town", organisation_id="o1", mediator_id=None)
    await _one_batch(memory_bus, TOPICS.trail, [receive, assign, same])
    moved = _entry("s1", "reassign", organisation_id="o2", mediator_id="m2", co_channels=["x"])
    await _one_batch(memory_bus, TOPICS.trail, [moved])
    # a replay after a crash (before the offsets were committed) undoes nothing: the entry that
    # changed nothing was marked seen, or it would now move the case back to o1
    await _one_batch(memory_bus, TOPICS.trail, [assign, same, moved])
    assert "batch failed" not in caplog.text
    [row] = await _rows(app, TriageCaseScope)
    assert (row.tier, row.grid_code, row.channel, row.organisation_id, row.mediator_id) == (
        "town",
        "520102003",
        "people",
        "o2",
        "m2",
    )
    assert row.co_channels == ["x"]
    inbox = app.state.runtime.delivery.tables.inbox
    seen = {r.event_id for r in await _rows(app, inbox) if r.consumer == CONSUMER}
    # the entries that changed nothing are marked seen too
    assert seen == {e.event_id for e in (receive, assign, same, moved)}


async def test_a_poison_trail_entry_fails_alone_and_the_scope_is_kept_one_by_one(
    app: FastAPI, memory_bus: InMemoryBus
) -> None:
    receive = _entry("s2", "receive", grid_code="520102003")
    bad = _entry("s3", "assign", tier="county")
    bad.payload["at"] = None  # the envelope parses, the entry does not: the batch fails
    assign = _entry("s2", "assign", tier="town", organisation_id="o1", mediator_id="m1")
    await _one_batch(memory_bus, TOPICS.trail, [receive, bad, assign])
    rows = {r.case_id: r for r in await _rows(app, TriageCaseScope)}
    assert set(rows) == {"s2"}
    row = rows["s2"]
    assert (row.tier, row.grid_code, row.organisation_id, row.mediator_id) == (
        "town",
        "520102003",
        "o1",
        "m1",
    )
    dead = memory_bus.log[Topics.dlq(TOPICS.trail)]
    assert [Envelope.from_bytes(m.value).event_id for m in dead] == [bad.event_id]


async def test_a_report_for_a_stored_case_in_a_batch_is_decided_once(
    app: FastAPI, memory_bus: InMemoryBus
) -> None:
    """A batch of reports reads no case rows: one for a stored case fails the batch's insert,
    and the replay one by one ignores it while its neighbours are decided once."""
    first = received("r1", "楼上邻居每天深夜噪音扰民，协商无果。")
    await _one_batch(memory_bus, TOPICS.reports, [first])
    again = received("r1", "楼上漏水")  # the same case, another event id
    others = [received(f"r{i}", "楼上漏水") for i in (2, 3)]
    await _one_batch(memory_bus, TOPICS.reports, [others[0], again, others[1]])
    await flush(app)
    decisions = sorted((d.case_id, d.attempt) for d in await _rows(app, TriageDecisionRow))
    assert decisions == [("r1", 1), ("r2", 1), ("r3", 1)]
    [r1] = [c for c in await _rows(app, TriageCase) if c.case_id == "r1"]
    assert r1.text == first.payload["text"]
    trail = [e.case_id for e in events(memory_bus, TOPICS.trail, "trail.appended")]
    assert sorted(trail) == ["r1", "r2", "r3"]
    assert not memory_bus.log[Topics.dlq(TOPICS.reports)]
