"""Native records on source.<src>.reports: adapted to canonical reports, or dead-lettered."""

from __future__ import annotations

import json

import pytest

from services.intake.adapters import NativeRecordError, adapt_110, adapt_12345, adapt_grid
from services.intake.canonical import CanonicalReport
from tests.unit.intake.conftest import Intake
from tests.unit.intake.natives import CALL_110, NATIVE, NOTE_GRID, ORDER_12345, REFS, raw


def test_110_call_record_adapts() -> None:
    r = CanonicalReport.model_validate(adapt_110(raw(CALL_110)))
    assert (r.source, r.source_ref, r.category) == ("110", "J5227312026112000123", "纠纷-邻里纠纷")
    assert r.reported_at is not None and r.reported_at.isoformat() == "2026-11-20T00:15:00+00:00"
    assert r.reporter is not None and r.reporter.phone == "13811112222"
    assert [p.role for p in r.parties] == ["applicant", "respondent"]
    assert r.parties[1].id_number == "522731198502021238"
    assert r.location is not None and r.location.lat == 27.21


def test_12345_work_order_adapts() -> None:
    r = CanonicalReport.model_validate(adapt_12345(raw(ORDER_12345)))
    assert r.category == "投诉-劳动保障/欠薪-紧急"
    assert [(p.name, p.role) for p in r.parties] == [
        ("刘德胜", "applicant"),
        ("南溪县宏远建筑劳务有限公司", "respondent"),
    ]


def test_grid_note_adapts() -> None:
    r = CanonicalReport.model_validate(adapt_grid(raw(NOTE_GRID)))
    assert r.location is not None and r.location.grid_code == "522731-103-007-01"
    assert r.reporter is not None and r.reporter.role == "grid_worker"
    assert len(r.parties) == 2


@pytest.mark.parametrize(
    ("fn", "record", "message"),
    [
        (adapt_110, {k: v for k, v in CALL_110.items() if k != "bjnr"}, "field 'bjnr' missing"),
        (adapt_110, CALL_110 | {"bjsj": "昨天上午"}, "field 'bjsj' is not a timestamp"),
        (adapt_12345, ORDER_12345 | {"sqlx": "表扬"}, "field 'sqlx' must be one of"),
        (
            adapt_grid,
            {k: v for k, v in NOTE_GRID.items() if k != "grid_code"},
            "field 'grid_code' missing",
        ),
        (adapt_grid, NOTE_GRID | {"parties": "彭正清"}, "field 'parties' must be a list"),
    ],
)
def test_unadaptable_records_say_which_field(fn, record, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NativeRecordError, match=message) as info:
        fn(raw(record))
    assert "13811112222" not in str(info.value) and "彭正清" not in str(info.value)


async def test_each_source_by_kafka_makes_a_case(intake: Intake) -> None:
    for source, record in NATIVE.items():
        await intake.publish_native(source, raw(record))
    await intake.settle()
    for source, ref in REFS.items():
        g = await intake.client.get(
            f"/v1/reports/{source}/{ref}", headers={"X-API-Key": intake.keys[source]}
        )
        assert g.status_code == 200 and g.json()["status"] == "received"
    received = intake.events(intake.topics.reports, "report.received")
    assert {e.payload["source_ref"] for e in received} == set(REFS.values())
    # the same record again (at-least-once delivery) does not make a second case
    await intake.publish_native("110", raw(CALL_110))
    await intake.settle()
    assert len(intake.events(intake.topics.reports, "report.received")) == 3


async def test_broken_records_go_to_the_dead_letter_topic(intake: Intake) -> None:
    broken = [
        b"{not json",
        raw(CALL_110 | {"jjdbh": "J-BAD", "bjrdh": "13811112222abc"}),
        raw(ORDER_12345 | {"gdbh": "GD-BAD", "slsj": "2026-11-20T09:02:11"[:10] + "x"}),
    ]
    for b in broken:
        await intake.publish_native("110" if b != broken[2] else "12345", b)
    await intake.publish_native("grid", raw(NOTE_GRID))  # the partition moves on
    await intake.settle()
    dlq = intake.bus.log["source.110.reports.dlq"] + intake.bus.log["source.12345.reports.dlq"]
    assert [m.value for m in dlq] == broken
    reasons = [dict(m.headers)["dlq.error"].decode() for m in dlq]
    assert "not UTF-8 JSON" in reasons[0]
    assert "reporter.phone: not a phone number" in reasons[1]
    assert "'slsj' is not a timestamp" in reasons[2]
    assert all("13811112222" not in r for r in reasons)
    assert [
        e.payload["source_ref"] for e in intake.events(intake.topics.reports, "report.received")
    ] == [NOTE_GRID["note_id"]]


async def test_records_sharing_a_party_across_sources_count_as_repeats(intake: Intake) -> None:
    """Two source systems never merge (no oracle, tests/unit/security/test_merge_oracle.py);
    the second case's report.received carries the repeat, which feeds severity."""
    await intake.publish_native("110", raw(CALL_110))
    await intake.settle()
    follow_up = ORDER_12345 | {
        "gdbh": "GD-REPEAT",
        "lxdh": "13933334444",
        "fl": "邻里纠纷",
        "sqnr": "楼上漏水问题一直没解决，邻居又吵起来了。",
    }
    await intake.publish_native("12345", json.dumps(follow_up).encode())
    await intake.settle()
    assert intake.events(intake.topics.reports, "report.repeated") == []
    received = intake.events(intake.topics.reports, "report.received")
    assert [(e.payload["source_ref"], e.payload["repeat_count"]) for e in received][-1] == (
        "GD-REPEAT",
        2,
    )
