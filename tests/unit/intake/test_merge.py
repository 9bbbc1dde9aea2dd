"""并单: a report sharing a party's phone or ID number with an open case within 72 h joins it."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from services.intake.repository import IntakeCase, IntakeReport
from shared.events import utcnow
from tests.unit.intake.conftest import Intake, report

PHONE, ID_NUMBER = "13700002222", "522731199001011236"


def with_party(source: str, ref: str, text: str = "楼上漏水，邻居吵架。", **party: str) -> dict:
    return report(source, ref, text=text, parties=[{"name": "赵六", "role": "applicant", **party}])


async def case_row(intake: Intake, case_id: str) -> IntakeCase:
    async with intake.app.state.runtime.sessions() as s:
        row = await s.get(IntakeCase, case_id)
    assert row is not None
    return row


async def test_shared_phone_from_one_sender_merges_and_counts(intake: Intake) -> None:
    first = (await intake.post(with_party("110", "M-1", phone=PHONE))).json()
    second = await intake.post(with_party("110", "M-2", phone="+86 137-0000-2222"))
    third = await intake.post(with_party("110", "M-3", id_number=ID_NUMBER, phone=PHONE))
    assert second.status_code == 202 and second.json()["merged"] is True
    assert second.json()["case_id"] == first["case_id"] == third.json()["case_id"]
    assert (await case_row(intake, first["case_id"])).repeat_count == 3
    await intake.settle()
    repeats = intake.events(intake.topics.reports, "report.repeated")
    assert [(e.payload["source_ref"], e.payload["repeat_count"]) for e in repeats] == [
        ("M-2", 2),
        ("M-3", 3),
    ]
    merges = [
        e.payload for e in intake.events(intake.topics.trail) if e.payload["action"] == "merge"
    ]
    assert [m["details"]["source_ref"] for m in merges] == ["M-2", "M-3"]
    assert all(m["from_status"] == m["to_status"] == "received" for m in merges)
    async with intake.app.state.runtime.sessions() as s:
        rows = (
            await s.exec(select(IntakeReport).where(IntakeReport.case_id == first["case_id"]))
        ).all()
    assert sorted((r.source_ref, r.merged) for r in rows) == [
        ("M-1", False),
        ("M-2", True),
        ("M-3", True),
    ]
    status = await intake.client.get(
        "/v1/reports/110/M-2", headers={"X-API-Key": intake.keys["110"]}
    )
    assert status.json()["merged"] is True and status.json()["repeat_count"] == 3


async def test_shared_id_number_merges(intake: Intake) -> None:
    a = (await intake.post(with_party("110", "I-1", id_number=ID_NUMBER))).json()
    b = (await intake.post(with_party("110", "I-2", id_number=ID_NUMBER.lower()))).json()
    assert b["merged"] and b["case_id"] == a["case_id"]


async def test_reporter_phone_alone_does_not_merge(intake: Intake) -> None:
    """A grid worker reports many disputes: only the parties' numbers match."""
    worker = {"name": "雷春燕", "phone": PHONE, "role": "grid_worker"}
    a = (await intake.post(report("grid", "W-1", reporter=worker))).json()
    b = (await intake.post(report("grid", "W-2", reporter=worker))).json()
    assert not b["merged"] and a["case_id"] != b["case_id"]


async def test_no_merge_into_a_closed_case(intake: Intake) -> None:
    a = (await intake.post(with_party("110", "C-1", phone=PHONE))).json()
    await intake.settle()
    await intake.publish_trail(a["case_id"], "follow_up", "closed", actor="system:followup")
    await intake.settle()
    b = (await intake.post(with_party("110", "C-2", phone=PHONE))).json()
    assert not b["merged"] and b["case_id"] != a["case_id"]


async def test_no_merge_after_the_window(intake: Intake) -> None:
    a = (await intake.post(with_party("110", "T-1", phone=PHONE))).json()
    async with intake.app.state.runtime.sessions() as s, s.begin():
        row = await s.get(IntakeCase, a["case_id"])
        assert row is not None
        row.received_at = utcnow() - timedelta(hours=73)
        s.add(row)
    b = (await intake.post(with_party("110", "T-2", phone=PHONE))).json()
    assert not b["merged"]


async def test_known_different_dispute_type_does_not_merge(intake: Intake) -> None:
    a = (await intake.post(with_party("110", "D-1", phone=PHONE, text="老板拖欠工资三个月"))).json()
    await intake.settle()
    await intake.publish_trail(
        a["case_id"], "received", "triaged", details={"dispute_type": "labour", "channel": "labour"}
    )
    await intake.settle()
    assert (await case_row(intake, a["case_id"])).dispute_type == "labour"
    other = (
        await intake.post(
            with_party("110", "D-2", phone=PHONE, text="夫妻吵架闹离婚，女方要求分财产")
        )
    ).json()
    assert not other["merged"] and other["case_id"] != a["case_id"]
    same = (
        await intake.post(with_party("110", "D-3", phone=PHONE, text="又来讨薪，工资还是没发"))
    ).json()
    assert same["merged"] and same["case_id"] == a["case_id"]
    # no type in the text: it joins the newest open case sharing the phone
    vague = (await intake.post(with_party("110", "D-4", phone=PHONE, text="双方又吵起来了"))).json()
    assert vague["merged"] and vague["case_id"] == other["case_id"]


async def test_trail_entries_carry_party_hashes_and_sealed_coordinates_never_numbers(
    intake: Intake,
) -> None:
    """Early warning matches parties across cases by keyed hash; the trail never shows a number."""
    body = with_party("grid", "H-1", phone=PHONE, id_number=ID_NUMBER)
    body["location"] = {"grid_code": "522731-103-007-01", "lat": 26.58, "lon": 107.97}
    body["parties"].append({"name": "黔东南某建筑有限公司", "role": "respondent"})
    first = (await intake.post(body)).json()
    await intake.post(with_party("grid", "H-2", phone=PHONE))  # 并单 within one sender
    await intake.settle()
    trail = intake.events(intake.topics.trail, "trail.appended")
    receive = next(e for e in trail if e.payload["action"] == "receive")
    merge = next(e for e in trail if e.payload["action"] == "merge")
    cipher = intake.app.state.runtime.cipher
    phone_hash = cipher.blind_index("phone", PHONE)
    assert set(receive.payload["party_hashes"]) == {
        phone_hash,
        cipher.blind_index("id_number", ID_NUMBER),
    }
    assert merge.payload["party_hashes"] == [phone_hash]
    assert merge.case_id == first["case_id"]
    assert cipher.unseal(receive.payload["sealed_location"]) == {"lat": 26.58, "lon": 107.97}
    assert receive.payload["details"]["parties"] == [
        {"role": "applicant", "kind": "person", "display": "赵*"},
        {"role": "respondent", "kind": "organisation", "display": "黔东南某建筑有限公司"},
    ]
    raw = b"".join(m.value for m in intake.bus.log[intake.topics.trail])
    assert PHONE.encode() not in raw and ID_NUMBER.encode() not in raw
