"""Concurrent HTTP reports share commits; each is answered after its own is stored, a merge or a
duplicate inside one group is seen as if the reports had come one after the other, and a report
whose storing fails falls back alone without taking its neighbours with it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlmodel import select

from services.intake.handlers import IntakeHandlers
from services.intake.receipts import ReceiptWriter
from services.intake.repository import (
    IntakeCase,
    IntakeReport,
    feedback_view,
    open_cases_by_hash,
    reports_by_refs,
)
from shared.events import utcnow
from tests.unit.intake.conftest import Intake, report

PHONE = "13700003333"


def with_party(ref: str, phone: str) -> dict[str, Any]:
    return report("110", ref, parties=[{"name": "钱七", "role": "applicant", "phone": phone}])


async def stored(intake: Intake) -> dict[str, IntakeReport]:
    async with intake.app.state.runtime.sessions() as s:
        return {r.source_ref: r for r in (await s.exec(select(IntakeReport))).all()}


async def test_concurrent_reports_share_commits_and_still_merge(intake: Intake) -> None:
    writer: ReceiptWriter = intake.app.state.receipts
    bodies = [report("110", f"G-{i}") for i in range(12)]
    bodies += [with_party("G-P1", PHONE), with_party("G-P2", PHONE), report("110", "G-0")]
    answers = await asyncio.gather(*(intake.post(b) for b in bodies))
    assert [a.status_code for a in answers] == [202] * len(bodies)
    assert writer.groups >= 1 and writer.grouped >= 2  # some of them shared a commit
    by_ref = {b["source_ref"]: a.json() for b, a in zip(bodies, answers, strict=True)}
    # whichever G-0 came second is a duplicate of the first, answered with its case
    g0 = [answers[0].json(), answers[-1].json()]
    assert sorted(a["duplicate"] for a in g0) == [False, True]
    assert g0[0]["case_id"] == g0[1]["case_id"]
    # whichever report of the phone came second joined the first's case (并单 within a group)
    p1, p2 = by_ref["G-P1"], by_ref["G-P2"]
    assert sorted([p1["merged"], p2["merged"]]) == [False, True]
    assert p1["case_id"] == p2["case_id"]
    rows = await stored(intake)
    assert len(rows) == 14  # one row per distinct report, the duplicate stored once
    async with intake.app.state.runtime.sessions() as s:
        cases = (await s.exec(select(IntakeCase))).all()
    assert len(cases) == 13
    await intake.settle()
    received = intake.events(intake.topics.reports, "report.received")
    assert sorted(e.payload["source_ref"] for e in received) == sorted(
        [f"G-{i}" for i in range(12)] + ["G-P2" if p1["merged"] else "G-P1"]
    )


async def test_a_report_that_fails_in_a_group_fails_alone(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = IntakeHandlers._store

    def store(self: IntakeHandlers, tx: Any, item: Any, *args: Any) -> Any:
        if item.report.source_ref == "BAD":
            raise RuntimeError("the database refused this report")
        return real(self, tx, item, *args)

    monkeypatch.setattr(IntakeHandlers, "_store", store)
    writer: ReceiptWriter = intake.app.state.receipts
    assert (await intake.post(report("110", "OK-0"))).status_code == 202  # the key is known now
    refs = ["OK-1", "OK-2", "BAD", "OK-3", "OK-4"]
    transport = httpx.ASGITransport(app=intake.app, raise_app_exceptions=False)
    headers = {"X-API-Key": intake.keys["110"]}
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        answers = await asyncio.gather(
            *(client.post("/v1/reports", json=report("110", r), headers=headers) for r in refs)
        )
    assert writer.rolled_back == 1  # BAD shared a group, which was stored again one by one
    codes = {r: a.status_code for r, a in zip(refs, answers, strict=True)}
    assert codes == {"OK-1": 202, "OK-2": 202, "BAD": 500, "OK-3": 202, "OK-4": 202}
    assert sorted(await stored(intake)) == ["OK-0", "OK-1", "OK-2", "OK-3", "OK-4"]
    await intake.settle()
    received = intake.events(intake.topics.reports, "report.received")
    assert sorted(e.payload["source_ref"] for e in received) == [f"OK-{i}" for i in range(5)]


async def test_a_batch_request_is_stored_in_order_with_its_merges(intake: Intake) -> None:
    items = [with_party("B-1", PHONE), report("110", "B-2"), with_party("B-3", PHONE)]
    r = await intake.client.post(
        "/v1/reports:batch", json={"reports": items}, headers={"X-API-Key": intake.keys["110"]}
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["index"] for x in results] == [0, 1, 2]
    assert results[2]["merged"] is True and results[2]["case_id"] == results[0]["case_id"]
    assert results[1]["case_id"] != results[0]["case_id"]


async def test_a_group_finds_its_stored_references_by_the_unique_index(intake: Intake) -> None:
    """Looking up which of a group's references are stored already uses the (source,
    source_ref) index: it does not scan every stored report for each group."""
    looked_up: list[tuple[str, Any]] = []

    def seen(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        if "FROM intake_reports" in statement and "source_ref IN" in statement:
            looked_up.append((statement, parameters))

    engine = intake.app.state.runtime.engine
    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        answers = await asyncio.gather(*[intake.post(report("110", f"IX-{i}")) for i in range(4)])
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert {a.status_code for a in answers} == {202}
    assert looked_up
    async with engine.connect() as conn:
        for statement, parameters in looked_up:
            plan = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            details = " ".join(str(row[-1]) for row in plan)
            assert "SCAN intake_reports" not in details, details
            assert "USING INDEX" in details, details


@pytest.mark.parametrize("n", [1, 3, 5, 600])
async def test_the_lookups_find_every_value_of_any_list_length(intake: Intake, n: int) -> None:
    """The receipt and feedback lookups are built per IN-list shape (a power of two, padded;
    chunks of 512): whatever the number of values, each stored one is found, once, and a
    value not stored matches nothing."""
    raw = [
        report("grid", f"LEN-{n}-{i}", parties=[{"name": "赵六", "phone": f"1390{n:03d}{i:04d}"}])
        for i in range(n)
    ]
    for i in range(0, n, 300):  # a batch request takes at most 500
        answers = await intake.client.post(
            "/v1/reports:batch",
            json={"reports": raw[i : i + 300]},
            headers={"X-API-Key": intake.keys["grid"]},
        )
        assert answers.status_code == 200, answers.text
    h: IntakeHandlers = intake.app.state.handlers
    async with intake.app.state.runtime.sessions() as session:
        stored = (
            await session.exec(select(IntakeReport).where(IntakeReport.source == "grid"))
        ).all()
        mine = [r for r in stored if r.source_ref.startswith(f"LEN-{n}-")]
        assert len(mine) == n
        refs = [("grid", r.source_ref) for r in mine] + [("grid", "LEN-none")]
        found = await reports_by_refs(session, refs)
        assert {k: v.case_id for k, v in found.items()} == {
            ("grid", r.source_ref): r.case_id for r in mine
        }
        hashes = [h.cipher.blind_index("phone", f"1390{n:03d}{i:04d}") or "" for i in range(n)]
        cases, by_hash = await open_cases_by_hash(
            session, [*hashes, "no-such-hash"], utcnow().replace(year=2000)
        )
        assert set(cases) == {r.case_id for r in mine}
        assert sorted(by_hash) == sorted(hashes)
        view = await feedback_view(session, [*(r.case_id for r in mine), "no-such-case"])
        assert set(view.cases) == {r.case_id for r in mine}
        assert all(len(view.reports[r.case_id]) == 1 for r in mine)
