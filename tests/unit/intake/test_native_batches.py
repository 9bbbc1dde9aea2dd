"""A partition's native records are stored together (set-based): duplicates and merges inside
the batch come out as if the records had come one by one; a bad record, or a reference stored
meanwhile by someone else, rolls the batch back and its records are stored one at a time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import select

from services.intake import handlers as handlers_module
from services.intake.repository import IntakeCase, IntakeReport, PartyIndex
from shared.bus import OutgoingMessage
from tests.unit.intake.conftest import Intake
from tests.unit.intake.natives import CALL_110


def call(ref: str, phone: str, **extra: Any) -> bytes:
    """A 110 call whose only party has this phone."""
    record = CALL_110 | {"jjdbh": ref, "bjrdh": phone, "dsr": [{"xm": "张建华", "dh": phone}]}
    return json.dumps(record | extra).encode()


async def publish_together(intake: Intake, records: list[bytes]) -> None:
    """One publish call: the records queue up and reach intake as one partition batch."""
    topic = intake.topics.source("110")
    await intake.bus.publish([OutgoingMessage(topic, None, r) for r in records])


async def rows(intake: Intake) -> tuple[list[IntakeReport], list[IntakeCase], list[PartyIndex]]:
    async with intake.app.state.runtime.sessions() as s:
        reports = list((await s.exec(select(IntakeReport))).all())
        cases = list((await s.exec(select(IntakeCase))).all())
        index = list((await s.exec(select(PartyIndex))).all())
    return reports, cases, index


async def test_a_batch_with_a_duplicate_and_a_merge_stores_each_report_once(
    intake: Intake,
) -> None:
    records = [
        call("NB-1", "13600001111"),
        call("NB-2", "13600002222"),
        call("NB-1", "13600001111"),  # the source sent it twice (at-least-once)
        call("NB-3", "13600001111"),  # the same party again: 并单 into NB-1's case
    ]
    await publish_together(intake, records)
    await intake.settle()
    reports, cases, index = await rows(intake)
    by_ref = {r.source_ref: r for r in reports}
    assert sorted(by_ref) == ["NB-1", "NB-2", "NB-3"]
    assert by_ref["NB-3"].merged and by_ref["NB-3"].case_id == by_ref["NB-1"].case_id
    assert not by_ref["NB-1"].merged and by_ref["NB-2"].case_id != by_ref["NB-1"].case_id
    counts = {c.case_id: c.repeat_count for c in cases}
    assert counts == {by_ref["NB-1"].case_id: 2, by_ref["NB-2"].case_id: 1}
    assert sorted((i.case_id, i.report_id) for i in index) == sorted(
        (r.case_id, r.report_id) for r in reports
    )
    received = intake.events(intake.topics.reports, "report.received")
    assert sorted(e.payload["source_ref"] for e in received) == ["NB-1", "NB-2"]
    [repeated] = intake.events(intake.topics.reports, "report.repeated")
    assert (repeated.payload["source_ref"], repeated.payload["repeat_count"]) == ("NB-3", 2)
    # the case's trail: received, then the merge, in causal order
    trail = [e for e in intake.events(intake.topics.trail) if e.case_id == by_ref["NB-1"].case_id]
    assert [e.payload["action"] for e in trail] == ["receive", "merge"]
    assert trail[1].payload["follows"] == [trail[0].event_id]
    # a later batch merges into the stored case and counts on from the stored count
    await publish_together(intake, [call("NB-4", "13600001111")])
    await intake.settle()
    _, cases, _ = await rows(intake)
    assert {c.case_id: c.repeat_count for c in cases}[by_ref["NB-1"].case_id] == 3


async def test_a_bad_record_in_the_middle_fails_alone(intake: Intake) -> None:
    bad = call("NB-BAD", "13600003333", bjsj="昨天上午")
    await publish_together(intake, [call("NB-5", "13600004444"), bad, call("NB-6", "13600005555")])
    await intake.settle()
    reports, _, _ = await rows(intake)
    assert sorted(r.source_ref for r in reports) == ["NB-5", "NB-6"]
    assert [m.value for m in intake.bus.log["source.110.reports.dlq"]] == [bad]
    received = intake.events(intake.topics.reports, "report.received")
    assert sorted(e.payload["source_ref"] for e in received) == ["NB-5", "NB-6"]


async def test_a_reference_stored_meanwhile_rolls_the_batch_back_and_is_answered_as_a_repeat(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    await publish_together(intake, [call("NB-7", "13600006666")])
    await intake.settle()
    [first], _, _ = await rows(intake)
    # another instance stored NB-7 between the batch's read and its commit: the read misses it
    real = handlers_module.reports_by_refs
    missed: list[int] = []

    async def stale(session: Any, refs: Any) -> Any:
        found = await real(session, refs)
        if ("110", "NB-7") in found and not missed:
            missed.append(1)
            return {k: v for k, v in found.items() if k != ("110", "NB-7")}
        return found

    monkeypatch.setattr(handlers_module, "reports_by_refs", stale)
    await publish_together(intake, [call("NB-8", "13600007777"), call("NB-7", "13600006666")])
    await intake.settle()
    assert missed == [1]  # the batch saw no NB-7, failed on the unique reference at commit
    reports, cases, _ = await rows(intake)
    assert sorted(r.source_ref for r in reports) == ["NB-7", "NB-8"]
    assert [r.case_id for r in reports if r.source_ref == "NB-7"] == [first.case_id]
    assert len(cases) == 2  # nothing of the rolled-back batch was kept
    received = intake.events(intake.topics.reports, "report.received")
    assert sorted(e.payload["source_ref"] for e in received) == ["NB-7", "NB-8"]
    assert intake.bus.log["source.110.reports.dlq"] == []


async def test_a_batch_of_new_cases_reads_no_trail_heads(intake: Intake) -> None:
    """New case ids have no trail heads: a batch opening cases reads none (only a case merged
    into has its heads read), and each new case's entry starts its causal chain."""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "trail_heads" in statement:
            statements.append(statement)

    engine = intake.app.state.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        await publish_together(intake, [call(f"J-H{i}", f"1390000{i:04d}") for i in range(5)])
        await intake.bus.drain()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements == []
    await intake.settle()
    received = [e for e in intake.events(intake.topics.trail) if e.payload["action"] == "receive"]
    assert len(received) == 5
    assert {(tuple(e.payload["follows"]), e.payload["seq"]) for e in received} == {((), 1)}
