"""Reporting: daily aggregates equal a recount, series by received day, CSV/XLSX, area summary."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from openpyxl import load_workbook

from services.followup import repository as repo
from services.followup.domain import CaseFilters
from services.followup.reporting import repository as rrepo
from services.followup.reporting.domain import prefix_level, scope_area, series
from shared.auth import StaffPrincipal
from shared.events import Envelope
from tests.unit.followup.conftest import T0, TOPICS, Ledger, trail_event

STATUSES = [
    ("received", "triaged", "triage"),
    ("triaged", "triaged", "retriage"),
    ("triaged", "assigned", "assign"),
    ("assigned", "returned", "return"),
    ("returned", "assigned", "assign"),
    ("assigned", "accepted", "accept"),
    ("accepted", "mediating", "note"),
    ("mediating", "mediating", "extend"),
    ("mediating", "mediating", "merge"),
    ("mediating", "failed", "fail"),
    ("failed", "escalated", "escalate"),
    ("escalated", "assigned", "assign"),
    ("mediating", "agreed", "agree"),
    ("agreed", "follow_up", "follow_up"),
    ("follow_up", "closed", "close"),
    ("follow_up", "reopened", "visit"),
    ("reopened", "mediating", "resume"),
    ("closed", "reopened", "reopen"),
    ("failed", "transferred", "transfer"),
    ("mediating", "merged", "merge"),
]
GRIDS = [
    "522731-101-001-01",
    "522731-101-002-01",
    "522731-102-001-01",
    "522731-102",
    "522731001001",
    "522731001002003",
    "5227310",
    None,
]


async def random_run(ledger: Ledger, seed: int, cases: int = 40, together: int = 1) -> None:
    """Cases whose entries come in random orders, with random facts, across many days: the
    life-cycle transitions, re-triage (type, severity, tier, place), merges both ways, reopening
    after a broken agreement, the court's extension, supervision notices.

    `together`: entries put on the bus at once (the ledger takes them as partition batches, a
    case's several entries in one batch and its others in the next)."""
    rng = random.Random(seed)
    waiting: list[Envelope] = []

    async def trail(case_id: str, to: str, frm: str | None, **kw: Any) -> None:
        if together == 1:
            await ledger.trail(case_id, to, frm, **kw)
            return
        waiting.append(trail_event(case_id, to, frm, **kw))
        if len(waiting) >= together:
            await ledger.publish(TOPICS.trail, *waiting)
            waiting.clear()

    types = ["labour", "neighbour", "land", "debt_contract"]
    for n in range(cases):
        case_id = f"r{seed}-{n}"
        at = T0 - timedelta(days=rng.randint(0, 75), hours=rng.randint(0, 23))
        await trail(
            case_id,
            "received",
            None,
            action="receive",
            at=at,
            details={"source": rng.choice(["110", "12345", "grid"]), "grid_code": rng.choice(GRIDS)}
            if rng.random() < 0.9
            else {},
        )
        status = "received"
        for _ in range(rng.randint(0, 12)):
            nexts = [s for s in STATUSES if s[0] == status]
            if not nexts:
                break
            frm, to, action = rng.choice(nexts)
            at += timedelta(hours=rng.randint(1, 30))
            details: dict[str, Any] = {}
            if action in ("triage", "retriage", "escalate", "assign"):
                details = {
                    "dispute_type": rng.choice(types),
                    "severity": rng.choice(["low", "medium", "high", "critical"]),
                    "channel": rng.choice(["people", "labour", "court"]),
                    "tier": rng.choice(["grid", "town", "county"]),
                    "organisation_id": rng.choice(["org-1", "org-2", None]),
                    "grid_code": rng.choice(GRIDS) if action == "retriage" else None,
                    "deadlines": {
                        "mediation_due": (at + timedelta(days=rng.randint(-3, 20))).isoformat()
                    },
                }
                details = {k: v for k, v in details.items() if v is not None}
            if action == "extend":
                details = {"deadlines": {"mediation_due": (at + timedelta(days=30)).isoformat()}}
            if action == "merge" and to == frm:  # another report merged into this case
                details = {"source": rng.choice(["110", "12345"]), "source_ref": f"M{n}"}
            if action in ("close", "visit"):
                details = {"satisfaction": rng.randint(1, 5)}
            if rng.random() < 0.1:
                await trail(
                    case_id,
                    status,
                    status,
                    action="supervise",
                    at=at,
                    details={"kind": "mediation_overdue"},
                )
            await trail(case_id, to, frm, action=action, at=at, details=details)
            status = to
    if waiting:
        await ledger.publish(TOPICS.trail, *waiting)


SCOPES = [
    StaffPrincipal("a", "admin"),
    StaffPrincipal("c", "coordinator", tier="town", grid_codes=("522731-101",)),
    StaffPrincipal("c", "coordinator", tier="town", grid_codes=("522731-10", "522731-101-0")),
    StaffPrincipal("k", "coordinator", tier="county"),
    StaffPrincipal("k", "coordinator", tier="county", grid_codes=("522731",)),
    StaffPrincipal("k", "coordinator", tier="county", grid_codes=("5227310", "522731-102")),
    StaffPrincipal("g", "coordinator", tier="grid", grid_codes=("522731-101-001-01",)),
    StaffPrincipal("v", "viewer", grid_codes=("522731-102",)),
    StaffPrincipal("v", "viewer", grid_codes=("52273100100",)),
    StaffPrincipal("v", "viewer"),
    StaffPrincipal("x", "coordinator"),  # no tier: sees nothing
]
FILTERS = [
    CaseFilters(),
    CaseFilters(channel="labour"),
    CaseFilters(severity="high"),
    CaseFilters(dispute_type="land", tier="town"),
    CaseFilters(source="110"),
    CaseFilters(tier="county"),
]


async def test_aggregates_equal_a_full_recount_after_a_randomised_run(ledger: Ledger) -> None:
    await random_run(ledger, 1)
    await random_run(ledger, 2, together=37)  # batches: changes summed per case and per row
    async with ledger.app.state.runtime.sessions() as session:
        kept = await rrepo.all_rows(session)
        recounted = await rrepo.recount(session)
        assert kept == recounted
        # every case in exactly one day row, one week row and one month row of level 0
        totals = [m[0] for k, m in kept.items() if k[2] == 0 and k[5] == k[7] == ""]
        assert sum(totals) == 3 * 80
        # what the routes read from the counters equals what the cases say, scope by scope
        mediator = StaffPrincipal("m", "mediator", channel="people", organisation="org-1")
        assert await rrepo.stats(session, CaseFilters(), mediator) is None  # from the cases
        n = 0
        for scope in SCOPES:
            for filters in FILTERS:
                assert await rrepo.stats(session, filters, scope) == await repo.stats(
                    session, filters, scope
                ), (scope, filters)
                # every grouping for the admin, two in turn for the others
                picked = GROUPS if n == 0 else [GROUPS[n % 9], GROUPS[(n + 4) % 9]]
                await _same_series(session, filters, scope, picked)
                n += 1


GROUPS: list[tuple[str | None, str, int]] = [
    (None, "town", 0),
    ("tier", "town", 0),
    ("organisation_id", "town", 0),
    ("dispute_type", "town", 0),
    ("channel", "town", 0),
    ("area", "county", 1),
    ("area", "town", 2),
    ("area", "village", 3),
    ("area", "grid", 4),
]


async def _same_series(
    session: Any,
    filters: CaseFilters,
    scope: StaffPrincipal,
    groups: list[tuple[str | None, str, int]],
) -> None:
    """Series and area figures from the counters equal those computed from the cases."""
    periods = [(date(2026, 9, 3), date(2026, 11, 20)), (date(2026, 10, 1), date(2026, 10, 31))]
    for first, last in periods:
        for column, level_name, level in groups:
            expected = await rrepo.counted_from_cases(session, filters, scope, first, last, column)
            group_by = {"organisation_id": "organisation"}.get(column or "", column)
            for bucket in ("day", "week", "month"):
                got = await rrepo.counted(
                    session,
                    filters,
                    scope,
                    first,
                    last,
                    column,
                    level=level,
                    months=bucket == "month",
                    bucket=bucket,  # summed per bucket by the database
                )
                assert got is not None
                assert series(got, first, last, bucket, group_by, level_name) == series(
                    expected, first, last, bucket, group_by, level_name
                ), (scope, filters, column, level_name, bucket, first)
            whole = await rrepo.counted(  # the whole period in one sum per group (area summary)
                session, filters, scope, first, last, column, level=level, months=True, bucket=None
            )
            assert whole is not None
            assert series(whole, first, first, "month", group_by, level_name) == series(
                [(first, g, m) for _, g, m in expected], first, first, "month", group_by, level_name
            ), (scope, filters, column, level_name, first)


def test_a_grid_prefix_is_one_level_of_areas() -> None:
    """code.startswith(p) ⇔ scope_area(code, prefix_level(p)) starts with p, for dashed and
    plain codes and prefixes cut anywhere."""
    rng = random.Random(5)
    codes = [
        "522731-101-001-01",
        "522731-101-001",
        "522731-1010-001-01",
        "522731-101-001-01-7",
        "522731",
        "5227",
        "522731001001",
        "522731001",
        "5227310010019",
        "GZ-01",
        "522731-",
    ]
    codes += [
        "-".join(str(rng.randint(1, 12)) for _ in range(rng.randint(1, 5))) for _ in range(50)
    ]
    codes += [str(rng.randint(5, 10 ** rng.randint(1, 14))) for _ in range(50)]
    for code in codes:
        for other in codes:
            for cut in range(1, len(other) + 1):
                p = other[:cut]
                level = prefix_level(p)
                assert code.startswith(p) == scope_area(code, level).startswith(p), (code, p)
                for deeper in range(level, 5):  # any deeper level answers it too
                    assert code.startswith(p) == scope_area(code, deeper).startswith(p)


async def received(ledger: Ledger, case_id: str, at: datetime, **details: Any) -> None:
    await ledger.trail(case_id, "received", None, action="receive", at=at, details=details)


async def test_series_by_received_day_in_shanghai(ledger: Ledger) -> None:
    # 2026-11-19 23:30 UTC is 2026-11-20 07:30 in Asia/Shanghai
    await received(ledger, "s1", datetime(2026, 11, 19, 15, 0, tzinfo=UTC), source="grid")
    await received(ledger, "s2", datetime(2026, 11, 19, 23, 30, tzinfo=UTC), source="110")
    await received(ledger, "s3", datetime(2026, 11, 21, 1, 0, tzinfo=UTC), source="110")
    await ledger.trail("s3", "agreed", "received", action="agree", at=T0 + timedelta(days=2))
    r = await ledger.get(
        "/v1/stats/series", params={"from": "2026-11-19", "to": "2026-11-21", "bucket": "day"}
    )
    body = r.json()
    assert body["time_zone"] == "Asia/Shanghai"
    assert body["period"] == {"from": "2026-11-19", "to": "2026-11-21"}
    assert body["scope"]["all_cases"] is True
    got = {i["bucket"]: (i["received"], i["settled"], i["backlog"]) for i in body["items"]}
    assert got == {
        "2026-11-19": (1, 0, 1),
        "2026-11-20": (1, 0, 1),
        "2026-11-21": (1, 1, 1),
    }  # agreed is still backlog until closed

    by_source = (
        await ledger.get(
            "/v1/stats/series",
            params={
                "from": "2026-11-16",
                "to": "2026-11-30",
                "bucket": "week",
                "group_by": "source",
            },
        )
    ).json()["items"]
    assert [(i["bucket"], i["group"], i["received"]) for i in by_source] == [
        ("2026-11-16", "110", 2),
        ("2026-11-16", "grid", 1),
        ("2026-11-23", "110", 0),
        ("2026-11-23", "grid", 0),
        ("2026-11-30", "110", 0),
        ("2026-11-30", "grid", 0),
    ]
    month = (
        await ledger.get(
            "/v1/stats/series", params={"from": "2026-10-01", "to": "2026-11-30", "bucket": "month"}
        )
    ).json()["items"]
    assert [(i["bucket"], i["received"], i["success_rate"]) for i in month] == [
        ("2026-10-01", 0, None),
        ("2026-11-01", 3, 1.0),
    ]


async def test_series_by_area_level_and_organisation(ledger: Ledger) -> None:
    await received(ledger, "a1", T0, grid_code="522731-101-001-01")
    await received(ledger, "a2", T0, grid_code="522731-101-002-03")
    await received(ledger, "a3", T0, grid_code="522731-102-001-01")
    await received(ledger, "a4", T0)
    params = {"from": "2026-11-20", "to": "2026-11-20", "group_by": "area"}
    town = (await ledger.get("/v1/stats/series", params={**params, "level": "town"})).json()
    # a4 has no location: in no town or village (shared.scope.case_area), county level only
    assert {i["group"]: i["received"] for i in town["items"]} == {
        "522731-101": 2,
        "522731-102": 1,
    }
    village = (await ledger.get("/v1/stats/series", params={**params, "level": "village"})).json()
    assert {i["group"]: i["received"] for i in village["items"]} == {
        "522731-101-001": 1,
        "522731-101-002": 1,
        "522731-102-001": 1,
    }
    county = (await ledger.get("/v1/stats/series", params={**params, "level": "county"})).json()
    assert {i["group"]: i["received"] for i in county["items"]} == {"522731": 3, "unlocated": 1}
    # a town coordinator's scope: only their own tier and area count
    await ledger.trail(
        "a1", "triaged", "received", action="triage", at=T0, details={"tier": "town"}
    )
    coord = (
        await ledger.get(
            "/v1/stats/series",
            role="coordinator",
            who={"tier": "town", "grid_codes": ("522731-101",)},
            params={"from": "2026-11-20", "to": "2026-11-20"},
        )
    ).json()
    assert [i["received"] for i in coord["items"]] == [1]
    assert coord["scope"]["grid_prefixes"] == ["522731-101"]
    assert coord["scope"]["all_cases"] is False


async def test_series_validation(ledger: Ledger) -> None:
    bad = [
        {"from": "2026-11-21", "to": "2026-11-20"},
        {"from": "2010-01-01", "to": "2026-11-20"},
        {"bucket": "year"},
        {"group_by": "mood"},
        {"from": "yesterday"},
    ]
    for params in bad:
        assert (await ledger.get("/v1/stats/series", params=params)).status_code == 422, params


async def test_dates_at_the_calendar_edges_are_refused_not_failed(ledger: Ledger) -> None:
    # a period's default start is 29 days before its end, its months end a day after: at the
    # calendar's edges that arithmetic overflowed (a 500 the API fuzzer found)
    for path in ("/v1/areas/summary", "/v1/stats/series", "/v1/places"):
        for params in ({"to": "0001-01-01"}, {"from": "9999-12-31", "to": "9999-12-31"}):
            r = await ledger.get(path, params=params)
            assert r.status_code == 422, (path, params, r.text)
    ok = await ledger.get("/v1/areas/summary", params={"from": "1900-01-01", "to": "1900-01-31"})
    assert ok.status_code == 200, ok.text
    for path in ("/v1/cases", "/v1/stats"):  # an offset that takes year 1 out of the calendar
        r = await ledger.get(path, params={"since": "0001-01-01T00:00:00+08:00"})
        assert r.status_code == 422 and "since" in r.text, (path, r.text)


async def test_exports_csv_and_xlsx_with_chinese_headings(ledger: Ledger) -> None:
    await received(ledger, "x1", T0, grid_code="522731-101-001-01")
    await ledger.trail(
        "x1", "triaged", "received", action="triage", at=T0, details={"dispute_type": "labour"}
    )
    await received(ledger, "x2", T0 + timedelta(days=1))
    params = {
        "from": "2026-11-01",
        "to": "2026-11-30",
        "bucket": "month",
        "group_by": "dispute_type",
    }
    r = await ledger.get("/v1/stats/series", params={**params, "format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["x-report-time-zone"] == "Asia/Shanghai"
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["统计时段", "分组", "受理数", "调解成功数"]
    assert "矛盾不上交率" in rows[0]
    assert [(row[0], row[1], row[2]) for row in rows[1:]] == [
        ("2026-11-01", "labour", "1"),
        ("2026-11-01", "unknown", "1"),
    ]
    x = await ledger.get("/v1/stats/series", params={**params, "format": "xlsx"})
    assert x.status_code == 200
    wb = load_workbook(io.BytesIO(x.content))
    sheet = wb["报表"]
    assert sheet["A1"].value == "统计时段" and sheet["C1"].value == "受理数"
    assert (sheet["A2"].value, sheet["B2"].value, sheet["C2"].value) == ("2026-11-01", "labour", 1)
    assert (sheet["B3"].value, sheet["C3"].value) == ("unknown", 1)
    about = {row[0].value: row[1].value for row in wb["说明"].iter_rows()}
    assert about["统计期间"] == "2026-11-01 至 2026-11-30"
    assert about["时区"] == "Asia/Shanghai"
    assert about["数据范围"] == "全部案件"


async def test_areas_summary_counts_and_open_warnings(ledger: Ledger) -> None:
    for i in range(10):
        # ten parties in one case: a group-risk warning in village 001
        parties = [{"role": "applicant", "kind": "person", "display": f"李*{j}"} for j in range(10)]
        details: dict[str, Any] = {"grid_code": f"522731-101-00{i % 2 + 1}-01"}
        if i == 0:
            details["parties"] = parties
        await received(ledger, f"z{i}", T0 + timedelta(hours=i), **details)
    body = (
        await ledger.get(
            "/v1/areas/summary",
            params={"from": "2026-11-20", "to": "2026-11-20", "level": "village"},
        )
    ).json()
    assert body["time_zone"] == "Asia/Shanghai" and body["level"] == "village"
    items = {i["area"]: i for i in body["items"]}
    assert items["522731-101-001"]["received"] == 5
    assert items["522731-101-002"]["received"] == 5
    assert items["522731-101-001"]["warnings_by_kind"].get("group_risk") == 1
    # 10 new cases in a town with no history, and 5 in each village: rising areas too
    assert items["522731-101"]["warnings_by_kind"] == {"rising_area": 1}
    assert items["522731-101-002"]["warnings_by_kind"] == {"rising_area": 1}


async def test_stats_state_period_time_zone_and_scope(ledger: Ledger) -> None:
    await received(ledger, "t1", T0)
    s = (await ledger.get("/v1/stats")).json()
    assert s["time_zone"] == "Asia/Shanghai"
    assert s["period"] == {"from": None, "to": None, "changed_since": None}
    assert s["scope"]["role"] == "admin" and s["scope"]["all_cases"]
    since = (await ledger.get("/v1/stats", params={"since": "2026-11-19T00:00:00Z"})).json()
    assert since["total"] == 1 and since["period"]["changed_since"] == "2026-11-19T00:00:00Z"


async def test_unlocated_cases_and_their_warnings_count_at_county_level_only(
    ledger: Ledger,
) -> None:
    """shared.scope.case_area: a case with no grid code lies in no town, village or grid and
    only the county centre sees it; the area summary and the series by area say the same."""
    parties = [{"role": "applicant", "kind": "person", "display": f"李*{j}"} for j in range(10)]
    await received(ledger, "u1", T0, parties=parties)  # unlocated, a group-risk warning
    await received(ledger, "u2", T0 + timedelta(hours=1), grid_code="522731-101-001-01")
    day = {"from": "2026-11-20", "to": "2026-11-20"}

    async def summary(level: str, **kw: Any) -> dict[str, dict[str, Any]]:
        r = await ledger.get("/v1/areas/summary", params={**day, "level": level}, **kw)
        assert r.status_code == 200
        return {i["area"]: i for i in r.json()["items"]}

    county = await summary("county")
    assert set(county) == {"522731", "unlocated"}
    assert county["unlocated"]["received"] == 1
    assert county["unlocated"]["warnings_by_kind"] == {"group_risk": 1}
    assert county["522731"]["received"] == 1
    for level in ("town", "village", "grid"):
        below = await summary(level)
        assert sum(i["received"] for i in below.values()) == 1, level
        assert not {"unknown", "unlocated", ""} & set(below), level
        assert all(i["warnings_by_kind"].get("group_risk", 0) == 0 for i in below.values())
    # asked for one area: the unlocated case is in none
    inside = (
        await ledger.get("/v1/areas/summary", params={**day, "level": "county", "area": "522731"})
    ).json()["items"]
    assert [i["area"] for i in inside] == ["522731"]
    # the county centre sees it; a town coordinator of the same town does not, at any level
    centre = await summary(
        "county", role="coordinator", who={"tier": "county", "grid_codes": ("522731",)}
    )
    assert centre["unlocated"]["received"] == 1
    for level in ("county", "town"):
        town = await summary(
            level, role="coordinator", who={"tier": "town", "grid_codes": ("522731-101",)}
        )
        assert "unlocated" not in town and "unknown" not in town
    series = (
        await ledger.get("/v1/stats/series", params={**day, "group_by": "area", "level": "town"})
    ).json()["items"]
    assert {i["group"]: i["received"] for i in series} == {"522731-101": 1}
