"""Reports in by HTTP: each source, idempotency (sequential and concurrent), batch, status."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import func, select

from services.intake.canonical import validate_report
from services.intake.handlers import Incoming, RefTaken
from services.intake.integrators import create_integrator
from services.intake.repository import IntakeReport
from shared.contracts import ReportReceived
from shared.events import utcnow
from tests.unit.intake.conftest import Intake, report

SAMPLE_PARTIES = [
    {
        "name": "王建国",
        "phone": "13800001111",
        "id_number": "522731198001011234",
        "role": "applicant",
    },
    {"name": "南溪县明视眼科医院", "role": "respondent"},
]


async def count_reports(intake: Intake) -> int:
    async with intake.app.state.runtime.sessions() as s:
        return int((await s.exec(select(func.count()).select_from(IntakeReport))).one())


async def test_each_source_is_accepted_by_http_and_stored_before_202(intake: Intake) -> None:
    for source, ref in (("110", "JJ-1"), ("12345", "GD-1"), ("grid", "WG-1")):
        r = await intake.post(
            report(
                source,
                ref,
                location={"grid_code": "522731-103-007-01"},
                parties=SAMPLE_PARTIES if source == "grid" else [],
            )
        )
        assert r.status_code == 202
        body = r.json()
        assert body["merged"] is False and body["duplicate"] is False
        assert body["status_url"] == f"/v1/reports/{source}/{ref}"
    assert await count_reports(intake) == 3  # stored before the answer, not after
    await intake.settle()
    received = intake.events(intake.topics.reports, "report.received")
    assert sorted(e.payload["source"] for e in received) == ["110", "12345", "grid"]
    trail = intake.events(intake.topics.trail, "trail.appended")
    assert {
        (e.payload["action"], e.payload["from_status"], e.payload["to_status"]) for e in trail
    } == {("receive", None, "received")}


async def test_report_received_event_masks_persons_and_seals_contact(intake: Intake) -> None:
    r = await intake.post(
        report(
            "grid",
            "WG-9",
            text="王建国（13800001111）称医院手术失误。",
            parties=SAMPLE_PARTIES,
            location={"address": "南溪县沙坪镇河口村5号"},
        )
    )
    assert r.status_code == 202
    await intake.settle()
    [env] = intake.events(intake.topics.reports, "report.received")
    ev = ReportReceived.model_validate(env.payload)
    assert env.case_id == r.json()["case_id"]
    assert "13800001111" not in ev.text and "138****1111" in ev.text
    assert [(p.kind, p.display) for p in ev.parties] == [
        ("person", "王*国"),
        ("organisation", "南溪县明视眼科医院"),
    ]
    contact = intake.app.state.runtime.cipher.unseal(ev.sealed_contact)
    assert contact["parties"][0]["phone"] == "13800001111"
    assert contact["address"] == "南溪县沙坪镇河口村5号"


async def test_sequential_duplicate_answers_the_same_case(intake: Intake) -> None:
    first = await intake.post(report(ref="DUP-1"))
    second = await intake.post(report(ref="DUP-1", text="重复发送"))
    assert second.status_code == 202
    assert second.json()["case_id"] == first.json()["case_id"]
    assert second.json()["duplicate"] is True
    assert await count_reports(intake) == 1
    await intake.settle()
    assert len(intake.events(intake.topics.reports, "report.received")) == 1


async def test_concurrent_duplicates_make_one_case(intake: Intake) -> None:
    answers = await asyncio.gather(*[intake.post(report(ref="RACE-1")) for _ in range(12)])
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["case_id"] for a in answers}) == 1
    assert sum(not a.json()["duplicate"] for a in answers) == 1
    assert await count_reports(intake) == 1
    await intake.settle()
    assert len(intake.events(intake.topics.reports, "report.received")) == 1


async def test_another_integrators_source_ref_is_a_409_that_tells_nothing_of_its_case(
    intake: Intake,
) -> None:
    """(source, source_ref) identifies a report, but an integrator sees nothing of another's
    (DOMAIN.md §7): a second integrator of the same source sending a reference the first one
    used is refused with no case id, alone (HTTP, batch, Open311, and in one group with the
    first sender's repeat), and the first sender's repeat is still its duplicate."""
    h = intake.app.state.handlers
    other = (
        await create_integrator(h.delivery.sessions, h.cipher, name="县热线", source="12345")
    ).api_key
    first = await intake.post(report("12345", "WO-1", text="业主张三丰反映物业漏水"))
    assert first.status_code == 202, first.text
    case_id = first.json()["case_id"]
    probe = await intake.post(report("12345", "WO-1", text="试探"), key=other)
    assert probe.status_code == 409, probe.text
    assert probe.json()["errors"] == [
        {"field": "source_ref", "reason": "already used on this source by another sender"}
    ]
    batch = await intake.client.post(
        "/v1/reports:batch",
        json={"reports": [report("12345", "WO-1"), report("12345", "WO-2")]},
        headers={"X-API-Key": other},
    )
    assert batch.status_code == 200, batch.text
    assert [r["status"] for r in batch.json()["results"]] == [409, 202]
    assert batch.json()["accepted"] == 1 and case_id not in batch.text
    form = {"service_code": "labour", "description": "试探", "source_ref": "WO-1"}
    o311 = await intake.client.post(
        "/open311/v2/requests.json", data=form, headers={"X-API-Key": other}
    )
    assert o311.status_code == 409 and o311.json()[0]["code"] == 409, o311.text
    # in one group of the writer: the first sender's repeat and the other's probe together
    again, probe = await asyncio.gather(
        intake.post(report("12345", "WO-1")), intake.post(report("12345", "WO-1"), key=other)
    )
    assert again.status_code == 202 and again.json()["case_id"] == case_id
    assert again.json()["duplicate"] is True
    assert probe.status_code == 409 and case_id not in probe.text
    assert await count_reports(intake) == 2  # WO-1 once, and the other's WO-2
    # a group stored together with both senders' WO-3: the second sender's fails the group
    wo3 = validate_report(
        report("12345", "WO-3"), max_text_chars=2000, max_future_skew_s=600, now=utcnow()
    )
    with pytest.raises(RefTaken):
        await h.receive_many([Incoming(wo3, "http", "first"), Incoming(wo3, "http", "second")])
    assert await count_reports(intake) == 2  # rolled back whole (then stored one by one)


async def test_status_endpoint_answers_masked_status(intake: Intake) -> None:
    r = await intake.post(
        report(
            "12345",
            "GD-77",
            reporter={"name": "李小红", "phone": "13912340000"},
            parties=SAMPLE_PARTIES,
            location={"address": "南溪县城关镇幸福路18号"},
        )
    )
    await intake.settle()
    g = await intake.client.get(
        "/v1/reports/12345/GD-77", headers={"X-API-Key": intake.keys["12345"]}
    )
    assert g.status_code == 200
    body = g.json()
    assert body["case_id"] == r.json()["case_id"] and body["status"] == "received"
    assert body["reporter"]["name"] == "李*红" and body["reporter"]["phone"] == "139****0000"
    assert body["parties"][0]["id_number"] == "522731**********34"
    assert body["parties"][1]["name"] == "南溪县明视眼科医院"
    assert body["location"]["address"].endswith("****")
    assert "13912340000" not in g.text and "幸福路18号" not in g.text
    missing = await intake.client.get(
        "/v1/reports/12345/NOPE", headers={"X-API-Key": intake.keys["12345"]}
    )
    assert missing.status_code == 404


async def test_batch_gives_per_item_results(intake: Intake) -> None:
    items = [
        report("grid", "B-1"),
        {"source": "grid", "source_ref": "B-2"},
        report("110", "B-3"),
        report("grid", "B-1"),
        report("grid", "B-4", text="a\u0000b"),
    ]
    r = await intake.client.post(
        "/v1/reports:batch", json={"reports": items}, headers={"X-API-Key": intake.keys["grid"]}
    )
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["status"] for x in res] == [202, 422, 403, 202, 422]
    assert res[1]["errors"] == [{"field": "reports.1.text", "reason": "field required"}]
    assert res[2]["errors"][0]["field"] == "reports.2.source"
    assert res[3]["duplicate"] is True and res[3]["case_id"] == res[0]["case_id"]
    assert res[4]["errors"][0] == {"field": "reports.4.text", "reason": "contains a NUL character"}
    assert r.json()["accepted"] == 2 and r.json()["rejected"] == 3


async def test_batch_limits(intake: Intake) -> None:
    key = {"X-API-Key": intake.keys["grid"]}
    too_many = [report("grid", f"M-{i}") for i in range(501)]
    r = await intake.client.post("/v1/reports:batch", json={"reports": too_many}, headers=key)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reports"
    r = await intake.client.post("/v1/reports:batch", json={"reports": []}, headers=key)
    assert r.status_code == 422
    full = [report("grid", f"F-{i}") for i in range(500)]
    r = await intake.client.post("/v1/reports:batch", json={"reports": full}, headers=key)
    assert r.status_code == 200 and r.json()["accepted"] == 500
