"""Pure shaping of API answers: urgency order, weekly trend, areas, the form → API mapping, XLSX."""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO

from openpyxl import load_workbook

from services.console.case_pages import action_call
from services.console.labels import actor, label
from services.console.report import build_workbook
from services.console.views import (
    area_table,
    by_urgency,
    merge_case,
    percent,
    period_bounds,
    schematic_map,
    weekly_trend,
)

TZ = "Asia/Shanghai"


def case(cid: str, **kw: object) -> dict[str, object]:
    return {"case_id": cid, "status": "assigned", "severity": "low", **kw}


def test_most_urgent_first_overdue_then_due_time_then_severity() -> None:
    cases = [
        case("done", status="closed", sign_for_due="2026-01-01T00:00:00Z"),
        case("late", sign_for_overdue=True, sign_for_due="2026-12-09T00:00:00Z"),
        case("soon-low", sign_for_due="2026-12-01T00:00:00Z"),
        case("soon-red", severity="critical", sign_for_due="2026-12-01T00:00:00Z"),
        case("later", sign_for_due="2026-12-05T00:00:00Z"),
        case("mediating", status="mediating", mediation_due="2026-12-02T00:00:00Z"),
    ]
    assert [c["case_id"] for c in by_urgency(cases)] == [
        "late",
        "soon-red",
        "soon-low",
        "mediating",
        "later",
        "done",
    ]


def test_weekly_trend_counts_received_and_settled_per_monday() -> None:
    since = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
    until = datetime(2026, 11, 20, tzinfo=UTC)
    cases = [
        {"received_at": "2026-11-03T01:00:00Z"},
        {"received_at": "2026-11-04T01:00:00Z", "agreed_at": "2026-11-10T01:00:00Z"},
        {"received_at": "2026-10-01T01:00:00Z", "agreed_at": "2026-11-17T01:00:00Z"},
    ]
    t = weekly_trend(cases, since, until, TZ)
    assert t.weeks == ["11-02", "11-09", "11-16"]
    assert t.received == [2, 0, 0]
    assert t.settled == [0, 1, 1]


def test_area_table_and_map_group_by_grid_code_prefix() -> None:
    cases = [
        case("a", grid_code="522731001001"),
        case("b", grid_code="522731001001", status="closed"),
        case("c", grid_code="522731002001", overdue=True),
        case("d", grid_code=None),
    ]
    rows = area_table(cases)
    assert [(r.code, r.town, r.total, r.open, r.overdue, r.settled) for r in rows] == [
        ("522731001001", "522731001", 2, 1, 0, 1),
        ("522731002001", "522731002", 1, 1, 1, 0),
        ("未定位", "未定位", 1, 1, 0, 0),
    ]
    towns = schematic_map(rows)
    assert [t.code for t in towns] == ["522731001", "522731002", "未定位"]
    points = [p for t in towns for v in t.villages for p in v["points"]]
    assert sorted(p["case_id"] for p in points) == ["a", "b", "c", "d"]
    # the same case lands on the same spot every time
    assert points == [p for t in schematic_map(rows) for v in t.villages for p in v["points"]]


def test_the_newer_service_decides_the_status() -> None:
    med = {"status": "accepted", "updated_at": "2026-11-30T10:00:01Z", "text": "报告"}
    ledger = {"status": "assigned", "updated_at": "2026-11-30T10:00:00Z", "version": 7}
    assert merge_case(med, ledger)["status"] == "accepted"
    ledger = {"status": "closed", "updated_at": "2026-12-30T10:00:00Z"}
    merged = merge_case(med, ledger)
    assert merged["status"] == "closed" and merged["text"] == "报告"


def test_period_starts_at_beijing_midnight() -> None:
    since, _ = period_bounds(1, datetime(2026, 11, 30, 19, 0, tzinfo=UTC), TZ)
    assert since == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 2026-12-01 00:00 +08:00


def test_forms_map_to_the_services_routes_and_bodies() -> None:
    assert action_call("accept", "c1", {}) == ("mediation", "/v1/cases/c1/accept", {})
    assert action_call("return", "c1", {"reason": " 不属于本渠道 "}) == (
        "mediation",
        "/v1/cases/c1/return",
        {"reason": "不属于本渠道"},
    )
    assert action_call(
        "agree", "c1", {"terms": "赔偿", "amount_yuan": "3,000", "performance_due": "2026-12-20"}
    ) == (
        "mediation",
        "/v1/cases/c1/agreement",
        {"terms": "赔偿", "amount_yuan": 3000, "performance_due": "2026-12-20T10:00:00Z"},
    )
    assert action_call(
        "visit", "c1", {"method": "phone", "honoured": "no", "satisfaction": "2", "note": ""}
    ) == (
        "followup",
        "/v1/cases/c1/visits",
        {"method": "phone", "honoured": False, "satisfaction": 2, "note": None},
    )
    assert action_call("assign", "c1", {"organisation_id": "people-town", "mediator_id": ""}) == (
        "mediation",
        "/v1/cases/c1/assign",
        {"organisation_id": "people-town", "mediator_id": None, "reason": "协调员指派"},
    )
    assert action_call("delete", "c1", {}) is None


def test_labels_speak_chinese() -> None:
    assert label("status", "follow_up") == "回访中"
    assert label("channel", "medical") == "医调委"
    assert label("dispute_type", "unknown") == "未知"
    assert label("severity", None) == "—"
    assert actor("system:triage") == "系统（triage）"
    assert actor("user:med-1") == "med-1"
    assert percent(0.66667) == "66.7%" and percent(None) == "—"


def test_workbook_has_the_period_figures_and_one_row_per_case() -> None:
    stats = {
        "total": 2,
        "backlog": 1,
        "overdue": 0,
        "by_status": {"closed": 1, "assigned": 1},
        "by_channel": {"people": 2},
        "mediation_success": {"settled": 1, "unsettled": 0, "rate": 1.0},
        "on_time": {"rate": None},
        "settled_at_first_tier": {"rate": 1.0},
        "satisfaction": {"mean": 5.0, "responses": 1},
    }
    cases = [
        case("c1", status="closed", channel="people", grid_code="522731001001"),
        case("c2", channel="people", received_at="2026-11-30T01:00:00Z"),
    ]
    since = datetime(2026, 11, 1, tzinfo=UTC)
    until = datetime(2026, 11, 30, tzinfo=UTC)
    data = build_workbook(
        stats,
        cases,
        weekly_trend(cases, since, until, TZ),
        area_table(cases),
        period="2026-11",
        tz=TZ,
        who="coordinator-grid",
    )
    wb = load_workbook(BytesIO(data))
    assert wb.sheetnames == ["概况", "按周", "区域", "案件"]
    summary = {r[0]: r[1] for r in wb["概况"].iter_rows(values_only=True) if r[0]}
    assert summary["案件总数"] == 2
    assert summary["调解成功率"] == "100.0%"
    assert summary["按期办结率"] == "—"
    assert summary["已办结"] == 1 and summary["人民调解"] == 2
    rows = list(wb["案件"].iter_rows(values_only=True))
    assert rows[1][:3] == ("c1", "已办结", "—")
    assert rows[2][10] == "2026-11-30 09:00"
