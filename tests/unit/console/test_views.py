"""Pure shaping of API answers: urgency order, weekly trend, areas, the form → API mapping, XLSX."""

from __future__ import annotations

from datetime import UTC, datetime

from services.console.case_pages import action_call
from services.console.labels import actor, label
from services.console.views import (
    area_levels,
    area_map,
    by_urgency,
    merge_case,
    parent_area,
    percent,
    period_bounds,
    trend_of_series,
    warning_summary,
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


def test_weekly_trend_reads_followups_series() -> None:
    items = [
        {"bucket": "2026-11-02", "group": "all", "received": 2, "settled": 0},
        {"bucket": "2026-11-09", "group": "all", "received": 0, "settled": 0},
        {"bucket": "2026-11-16", "group": "all", "received": 1, "settled": 1},
    ]
    t = trend_of_series(items)
    assert t.weeks == ["11-02", "11-09", "11-16"]
    assert t.received == [2, 0, 1]
    assert t.settled == [0, 0, 1]


def test_area_levels_cut_grid_codes_as_followup_does() -> None:
    assert area_levels("522731001001") == {
        "county": "522731",
        "town": "522731001",
        "village": "522731001001",
    }
    assert area_levels("522731-103-007-01")["grid"] == "522731-103-007-01"
    assert parent_area("522731001001") == "522731001"


def test_map_draws_points_from_coarse_places_and_areas_around_them() -> None:
    areas = [
        {"area": "522731001001", "received": 2, "backlog": 1, "overdue": 1, "open_warnings": 1},
        {"area": "522731001002", "received": 1, "backlog": 1, "overdue": 0, "open_warnings": 0},
        {"area": "522731002001", "received": 3, "backlog": 3, "overdue": 0, "open_warnings": 0},
    ]
    points = [
        {"case_id": "a", "grid_code": "522731001001", "lat": 26.5834, "lon": 107.9772,
         "severity": "high", "status": "assigned", "dispute_type": "neighbour"},
        {"case_id": "b", "grid_code": "522731001001", "lat": 26.5840, "lon": 107.9780,
         "severity": "low", "status": "closed", "dispute_type": "neighbour"},
        {"case_id": "c", "grid_code": "522731001002", "lat": 26.5700, "lon": 107.9900,
         "severity": "medium", "status": "assigned", "dispute_type": "debt_contract"},
    ]  # fmt: skip
    m = area_map(areas, points, "village", width=640, height=400)
    by_id = {p.case_id: p for p in m.points}
    # north up, east right: c lies south-east of a
    assert by_id["c"].x > by_id["a"].x and by_id["c"].y > by_id["a"].y
    assert all(0 <= p.x <= 640 and 0 <= p.y <= 400 for p in m.points)
    boxes = {a.code: a for a in m.areas}
    first = boxes["522731001001"]
    for p in (by_id["a"], by_id["b"]):
        assert first.x < p.x < first.x + first.w and first.y < p.y < first.y + first.h
    assert first.located and first.overdue == 1 and first.warnings == 1
    # no coordinates reported in the second town: a tile in the strip below
    assert not boxes["522731002001"].located and m.strip_y is not None
    assert boxes["522731002001"].y > max(p.y for p in m.points)
    assert [t.code for t in m.towns] == ["522731001"]
    # no points at all: every area is a tile, nothing breaks
    bare = area_map(areas, [], "village")
    assert bare.points == [] and all(not a.located for a in bare.areas)


def test_warnings_are_told_in_chinese_from_their_facts() -> None:
    repeat = {
        "kind": "repeat_party",
        "facts": {"cases_in_window": 3, "window_days": 90, "threshold": 3, "party": "ab12"},
    }
    assert warning_summary(repeat) == "同一当事人 90 天内涉及 3 件纠纷（预警阈值 3 件）"
    rose = {
        "kind": "escalating",
        "facts": {"reason": "severity_rose", "from_severity": "low", "to_severity": "high"},
    }
    assert warning_summary(rose) == "风险等级由蓝·一般升至橙·重大"
    due = {"kind": "soon_due", "facts": {"deadline": "sign_for", "hours_left": 2.5}}
    assert warning_summary(due) == "签收期限将至，剩余约 2.5 小时"
    # the hours left at `now`, not those stored when the warning was raised
    due["facts"]["due_at"] = "2026-11-30T12:00:00+00:00"
    at = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)
    assert warning_summary(due, at) == "签收期限将至，剩余约 1.5 小时"
    group = {"kind": "group_risk", "facts": {"basis": "employer", "employer": "某公司",
             "open_labour_cases": 5, "window_days": 30}}  # fmt: skip
    assert warning_summary(group) == "某公司 30 天内有 5 件未结劳动争议"


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
    # the court's one extension: mediation's documented route
    assert action_call("extend", "c1", {"reason": "当事人申请延期"}) == (
        "mediation",
        "/v1/cases/c1/extension",
        {"reason": "当事人申请延期"},
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
