"""case.triaged in consumer batches: new cases written by Core at the batch's commit, later
events of the same batch see them, a duplicate counts once, a poison event fails alone."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import func, select

from services.mediation.repository import CaseReader, MediationCase, NewCase
from shared.bus import OutgoingMessage
from shared.contracts import REGISTRY
from shared.events import Envelope, new_id
from shared.topics import Topics
from tests.unit.mediation.conftest import DAY, NIGHT, Svc


def _triaged(svc: Svc, case_id: str, **kw: Any) -> Envelope:
    payload = svc.routed(
        case_id, **({"text": "楼上漏水", "parties": [], "sealed_contact": None} | kw)
    )
    return REGISTRY.event(payload, event_type="case.triaged", producer="test", case_id=case_id)


async def _one_batch(svc: Svc, envs: list[Envelope], topic: str | None = None) -> None:
    """Queue the events together (one partition batch, one transaction) and wait."""
    topic = topic or svc.topics.triaged
    await svc.bus.publish([OutgoingMessage(topic, e.case_id, e.to_bytes()) for e in envs])
    await svc.bus.drain()
    await svc.flush()


async def _count(svc: Svc, model: Any, case_id: str) -> int:
    async with svc.app.state.runtime.sessions() as s:
        stmt = select(func.count()).select_from(model).where(model.case_id == case_id)
        return int((await s.exec(stmt)).one())


def test_a_new_case_has_the_stored_cases_columns_and_defaults() -> None:
    columns = MediationCase.__table__.columns  # type: ignore[attr-defined]
    fields = {f.name: f for f in dataclasses.fields(NewCase) if f.name not in ("row", "readers")}
    assert set(fields) == set(columns.keys())
    for name, f in fields.items():
        default = columns[name].default
        if f.default is not dataclasses.MISSING and default is not None and default.is_scalar:
            assert f.default == default.arg, name


async def test_a_case_routed_and_rerouted_in_one_batch_is_stored_once_as_the_second_says(
    svc: Svc, caplog: pytest.LogCaptureFixture
) -> None:
    cid = new_id()
    first = _triaged(svc, cid, co_channels=["labour"], tier="county", channel="police")
    again = _triaged(
        svc, cid, attempt=2, channel="people", tier="town", co_channels=["labour", "police"]
    )
    await _one_batch(svc, [first, first, again])  # the duplicate counts once
    assert "batch failed" not in caplog.text  # in the batch, not by the one-by-one replay
    case = await svc.case(cid)
    assert (case["status"], case["channel"], case["organisation_id"], case["tier"]) == (
        "assigned",
        "people",
        "people-town",
        "town",
    )
    assert [t["action"] for t in svc.trail(cid)] == ["assign", "reassign"]
    assert await _count(svc, MediationCase, cid) == 1
    # the first routing's copy stays, the second adds its own; none twice
    assert sorted(case["reader_organisations"]) == ["labour-county", "labour-town", "police-town"]
    assert await _count(svc, CaseReader, cid) == 3


async def test_a_new_case_closed_by_follow_up_later_is_read_from_the_database(svc: Svc) -> None:
    cid = new_id()
    await _one_batch(svc, [_triaged(svc, cid)])
    await svc.closed(cid)
    assert (await svc.case(cid))["status"] == "closed"


async def test_a_poison_event_fails_alone_and_its_neighbours_are_stored_once(svc: Svc) -> None:
    good = [new_id() for _ in range(3)]
    envs = [_triaged(svc, c) for c in good]
    bad = _triaged(svc, new_id())
    bad.payload["severity"] = None  # the envelope parses, the payload does not: the batch fails
    await _one_batch(svc, [envs[0], envs[1], bad, envs[2]])
    for cid in good:
        assert (await svc.case(cid))["status"] == "assigned"
        assert await _count(svc, MediationCase, cid) == 1
        assert [t["action"] for t in svc.trail(cid)] == ["assign"]
    dead = svc.bus.log[Topics.dlq(svc.topics.triaged)]
    assert [Envelope.from_bytes(m.value).event_id for m in dead] == [bad.event_id]
    assert await _count(svc, MediationCase, bad.case_id) == 0


async def test_a_batch_counts_its_new_cases_for_every_organisation(
    svc: Svc, caplog: pytest.LogCaptureFixture
) -> None:
    """Open-case counts are read once per batch: new cases of the batch (not yet written) count
    for their mediators, in whatever organisation, as the batch goes."""
    before = await svc.triaged()  # stored: "…-day" has one open case
    ids = [new_id() for _ in range(4)]
    envs = [_triaged(svc, c) for c in ids]
    await _one_batch(svc, envs)
    assert "batch failed" not in caplog.text
    got = [(await svc.case(c))["mediator_id"] for c in [before, *ids]]
    assert len(set(got)) == 1  # the town office has one day mediator: all theirs
    reasons = [svc.trail(c)[0]["reason"].split("；")[-1] for c in ids]
    assert reasons == [f"值班调解员在办{n}件，最少" for n in (1, 2, 3, 4)]


async def test_a_first_routing_of_a_stored_case_in_a_batch_changes_nothing(svc: Svc) -> None:
    """A batch of first routings reads no case rows: one for a stored case fails the batch's
    insert, and the replay one by one ignores it while its neighbours are assigned once."""
    stored = await svc.triaged(channel="people")
    ids = [new_id(), new_id()]
    stale = _triaged(svc, stored, channel="court")  # attempt 1 again, another event id
    await _one_batch(svc, [_triaged(svc, ids[0]), stale, _triaged(svc, ids[1])])
    assert (await svc.case(stored))["channel"] == "people"
    assert [t["action"] for t in svc.trail(stored)] == ["assign"]
    for cid in ids:
        assert (await svc.case(cid))["status"] == "assigned"
        assert [t["action"] for t in svc.trail(cid)] == ["assign"]
        assert await _count(svc, MediationCase, cid) == 1
    assert not svc.bus.log[Topics.dlq(svc.topics.triaged)]


async def test_a_batch_of_new_cases_reads_no_trail_heads_and_counts_from_the_index(
    svc: Svc, caplog: pytest.LogCaptureFixture
) -> None:
    """New cases have no trail heads in mediation yet, so their batch reads none (each entry
    starts after its cause); the open-case count per mediator is answered from the covering
    index, not by fetching every case of the organisation."""
    statements: list[tuple[str, Any]] = []

    def seen(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        statements.append((statement, parameters))

    engine = svc.app.state.runtime.engine
    ids = [new_id() for _ in range(3)]
    envs = [_triaged(svc, c) for c in ids]
    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await _one_batch(svc, envs)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert "batch failed" not in caplog.text
    assert not [s for s, _ in statements if s.lstrip().startswith("SELECT") and "trail_heads" in s]
    for env in envs:
        [entry] = svc.trail(env.case_id)
        assert (entry["action"], entry["follows"], entry["seq"]) == ("assign", [], 1)
    counts = [(s, p) for s, p in statements if "count(" in s and "FROM mediation_cases" in s]
    assert len(counts) == 1  # one organisation, read once for the batch
    async with engine.connect() as conn:
        plan = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {counts[0][0]}", counts[0][1])
        details = " ".join(str(row[-1]) for row in plan)
    assert "COVERING INDEX ix_mediation_cases_workload" in details, details


async def test_an_office_with_nobody_on_duty_reads_no_counts(svc: Svc) -> None:
    """At night a grid office (no night on-call) queues the case without counting anyone's
    open cases; by day its mediator gets the next one with the count as before."""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    engine = svc.app.state.runtime.engine
    svc.clock.set(NIGHT)
    night = new_id()
    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await _one_batch(svc, [_triaged(svc, night, tier="grid")])
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    case = await svc.case(night)
    assert (case["organisation_id"], case["mediator_id"]) == ("people-grid", None)
    assert not [s for s in statements if "count(" in s and "FROM mediation_cases" in s]
    svc.clock.set(DAY)
    day = new_id()
    await _one_batch(svc, [_triaged(svc, day, tier="grid")])
    assert (await svc.case(day))["mediator_id"] == "med-people-grid-day"
    assert svc.trail(day)[0]["reason"].endswith("值班调解员在办0件，最少")
