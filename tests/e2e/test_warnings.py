"""Early warnings (DOMAIN.md §8) from realistic report sequences, through the four services and
the real broker: raised, acknowledged, cleared; then the series and its exports read back."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from openpyxl import load_workbook

from services.followup.warnings.domain import LOCAL
from tests.conftest import BOOTSTRAP
from tests.e2e.conftest import System, eventually
from tests.e2e.test_case_lives import ledger_status, mediation_case, mediator_of, submit, trail

pytestmark = pytest.mark.kafka

VILLAGE = "522731001001"  # the demo county's first village (town 522731001)
WAGE_VILLAGE = "522731002001"  # a village of the second town
COMPANY = "黔东南州宏达建筑工程有限公司"


def report(
    source: str,
    ref: str,
    text: str,
    *,
    category: str | None = None,
    grid: str = VILLAGE,
    parties: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "source": source,
        "source_ref": ref,
        "text": text,
        "category": category,
        "location": {"grid_code": grid, "lat": 26.583412, "lon": 107.977151},
        "parties": parties or [],
    }


async def warnings(sys: System, **params: Any) -> list[dict[str, Any]]:
    r = await sys.followup.get("/v1/warnings", headers=sys.admin, params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def warning_where(sys: System, what: str, **want: Any) -> dict[str, Any]:
    """Wait for a warning whose fields match (case lists compared as sets)."""

    async def probe() -> dict[str, Any] | None:
        for w in await warnings(sys, kind=want["kind"]):
            if all(set(w[k]) == set(v) if k == "case_ids" else w[k] == v for k, v in want.items()):
                return w
        return None

    found: dict[str, Any] = await eventually(probe, what=what)
    return found


async def scan(sys: System, at: datetime) -> None:
    """Run the followup's warning scan at a moved time (the clock the background scan reads)."""
    app = sys.apps["followup"]
    await app.state.warnings.scan(app.state.runtime.delivery, at)


async def triaged(sys: System, case_id: str) -> dict[str, Any]:
    async def probe() -> Any:
        r = await sys.followup.get(f"/v1/cases/{case_id}", headers=sys.admin)
        return r.json() if r.status_code == 200 and r.json()["tier"] else None

    found: dict[str, Any] = await eventually(probe, what=f"{case_id} triaged in the ledger")
    return found


async def typed_in_intake(sys: System, body: dict[str, Any]) -> str:
    """Submit a report and wait until intake knows its case's type, as it would days later
    (a report of a case whose type is not yet known may be merged into it)."""
    case_id = await submit(sys, body)
    key = {"X-API-Key": sys.keys[body["source"]]}

    async def probe() -> bool:
        r = await sys.intake.get(f"/v1/reports/{body['source']}/{body['source_ref']}", headers=key)
        return r.status_code == 200 and r.json()["dispute_type"] is not None

    await eventually(probe, what=f"{body['source_ref']} typed in intake")
    return case_id


async def warning_events(
    sys: System, expected: int, wanted: frozenset[tuple[str, str]] = frozenset()
) -> list[dict[str, Any]]:
    """Read cases.warnings from the start until `expected` events came, among them every
    (event type, kind) `wanted` (the relay may publish the newest a moment after the API shows
    it): the topic's own bytes."""
    consumer = AIOKafkaConsumer(
        f"{sys.prefix}cases.warnings",
        bootstrap_servers=BOOTSTRAP,
        group_id=f"{sys.prefix}warnings-reader",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: list[dict[str, Any]] = []
    try:

        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    env = json.loads(rec.value)
                    assert rec.key is not None and rec.key.decode() == env["case_id"]
                    seen.append(env)
            kinds = {(e["event_type"], e["payload"]["kind"]) for e in seen}
            return len(seen) >= expected and wanted <= kinds

        await eventually(enough, what=f"{expected} warning events")
    finally:
        await consumer.stop()
    return seen


async def test_a_man_in_his_third_dispute_in_90_days_then_a_broken_agreement_and_a_new_report(
    system: System,
) -> None:
    sys = system
    zhang = {"name": "张大山", "phone": "13900001111", "role": "applicant"}
    # 1. three different disputes of the same man within days: repeat_party on the third
    first = await typed_in_intake(
        sys,
        report("grid", "W-1", "张大山反映楼上住户漏水，双方因维修发生争吵。", parties=[zhang]),
    )
    second = await typed_in_intake(
        sys,
        report(
            "12345",
            "W-2",
            "市民来电反映：借给朋友5000元至今未还，多次催讨无果。诉求：协调还款。",
            category="其他/借贷",
            parties=[zhang],
        ),
    )
    third = await typed_in_intake(
        sys,
        report(
            "110",
            "W-3",
            "报警人张大山称与妻子因家庭琐事发生争吵，要求民警到场调解。",
            category="纠纷-家庭纠纷",
            parties=[zhang],
        ),
    )
    assert len({first, second, third}) == 3  # three cases, none merged
    newest = await triaged(sys, third)
    repeat = await warning_where(
        sys, "repeat_party", kind="repeat_party", case_ids=[first, second, third]
    )
    assert repeat["tier"] == newest["tier"] and repeat["facts"]["cases_in_window"] == 3
    assert "13900001111" not in json.dumps(repeat)

    # 2. an agreement broken at the first visit reopens the case: escalating
    li = {"name": "李秀英", "phone": "13800002222", "role": "applicant"}
    settled = await submit(
        sys, report("grid", "W-4", "李秀英反映邻居在公共通道堆放杂物，协商未果。", parties=[li])
    )
    case = await mediation_case(sys, settled, "assigned")
    who = mediator_of(sys, case)
    assert (await sys.mediation.post(f"/v1/cases/{settled}/accept", headers=who)).status_code == 200
    r = await sys.mediation.post(f"/v1/cases/{settled}/notes", headers=who, json={"text": "到场"})
    assert r.status_code == 201
    r = await sys.mediation.post(
        f"/v1/cases/{settled}/agreement", headers=who, json={"terms": "三日内清理杂物"}
    )
    assert r.status_code == 201
    await ledger_status(sys, settled, "follow_up")
    r = await sys.followup.post(
        f"/v1/cases/{settled}/visits",
        headers=who,
        json={"method": "visit", "honoured": False, "satisfaction": 2},
    )
    assert r.status_code == 201, r.text
    escalating = await warning_where(sys, "escalating", kind="escalating", case_ids=[settled])
    assert escalating["facts"]["reason"] == "reopened"

    # 3. the same party reports again: repeat_after_agreement, to the tier that settled it
    again = await submit(
        sys,
        report(
            "12345",
            "W-5",
            "市民来电反映：小区物业多次收取停车费不开发票。诉求：规范收费。",
            category="城乡建设/物业管理",
            parties=[li],
        ),
    )
    after = await warning_where(
        sys, "repeat_after_agreement", kind="repeat_after_agreement", case_ids=[settled, again]
    )
    assert after["tier"] == case["tier"] and after["facts"]["settled_case"] == settled

    # 4. the coordinator of that tier acknowledges it: a trail entry on both cases
    coordinator = sys.staff_of("coordinator", tier=after["tier"])
    r = await sys.followup.post(
        f"/v1/warnings/{after['warning_id']}/acknowledge",
        headers=coordinator,
        json={"note": "已约谈双方，安排网格员跟进"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "acknowledged"
    for case_id in (settled, again):

        async def acknowledged(case_id: str = case_id) -> bool:
            entries = await trail(sys, case_id)
            return any(e["action"] == "acknowledge_warning" for e in entries)

        await eventually(acknowledged, what=f"acknowledgement on the trail of {case_id}")

    # 5. clearing: the reopened case agrees again (escalating), the new case is transferred
    await mediation_case(sys, settled, "mediating")
    r = await sys.mediation.post(
        f"/v1/cases/{settled}/agreement", headers=who, json={"terms": "当日清理完毕"}
    )
    assert r.status_code == 201, r.text
    await warning_where(sys, "escalating cleared", kind="escalating", status="cleared")
    await scan(sys, sys.clock.now() + timedelta(days=91))
    await warning_where(sys, "repeat_party cleared", kind="repeat_party", status="cleared")

    events = await warning_events(
        sys, 5, frozenset({("warning.cleared", "repeat_party"), ("warning.cleared", "escalating")})
    )
    kinds = [(e["event_type"], e["payload"]["kind"]) for e in events]
    assert ("warning.raised", "repeat_party") in kinds
    assert ("warning.raised", "repeat_after_agreement") in kinds
    assert ("warning.cleared", "escalating") in kinds
    assert ("warning.cleared", "repeat_party") in kinds
    raw = json.dumps(events, ensure_ascii=False)
    assert "13900001111" not in raw and "13800002222" not in raw and "张大山" not in raw


async def test_five_wage_claims_against_one_company_then_series_and_exports(
    system: System,
) -> None:
    sys = system
    cases = []
    for i in range(5):
        worker = {"name": f"王建{'国军民华平'[i]}", "phone": f"1370000{i:04d}", "role": "applicant"}
        cases.append(
            await submit(
                sys,
                report(
                    "12345",
                    f"WAGE-{i}",
                    f"市民来电反映：在{COMPANY}工地务工，被拖欠工资8000元，多次讨要未果。"
                    "诉求：协调支付工资。",
                    category="劳动保障/欠薪",
                    grid=WAGE_VILLAGE,
                    parties=[worker, {"name": COMPANY, "role": "respondent"}],
                ),
            )
        )
    group = await warning_where(sys, "group_risk on five claims", kind="group_risk", case_ids=cases)
    assert group["tier"] == "county" and group["facts"]["employer"] == COMPANY
    assert group["facts"]["open_labour_cases"] == 5
    # five new cases in a week where there were none: the town and the village are rising
    town = await warning_where(sys, "rising town", kind="rising_area", area_code="522731002")
    village = await warning_where(sys, "rising village", kind="rising_area", area_code=WAGE_VILLAGE)
    assert (town["tier"], village["tier"]) == ("county", "town")
    assert set(village["case_ids"]) == set(cases)

    summary = (
        await sys.followup.get("/v1/areas/summary", headers=sys.admin, params={"level": "town"})
    ).json()
    area = next(i for i in summary["items"] if i["area"] == "522731002")
    assert area["received"] == 5
    # the town's own rising warning and its village's, and the employer's
    assert area["warnings_by_kind"] == {"group_risk": 1, "rising_area": 2}

    # the series by received day (Asia/Shanghai) and dispute type, and its exports
    today = datetime.now(LOCAL).date().isoformat()
    params = {"from": today, "to": today, "group_by": "dispute_type"}

    async def labour_counted() -> Any:
        r = await sys.followup.get("/v1/stats/series", headers=sys.admin, params=params)
        rows = [i for i in r.json()["items"] if i["group"] == "labour"]
        return rows if rows and rows[0]["received"] == 5 else None

    [labour] = await eventually(labour_counted, what="five labour cases in the series")
    assert labour["bucket"] == today and labour["backlog"] == 5
    r = await sys.followup.get(
        "/v1/stats/series", headers=sys.admin, params={**params, "format": "csv"}
    )
    lines = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert lines[0][:3] == ["统计时段", "分组", "受理数"]
    assert [today, "labour", "5"] == lines[1][:3]
    r = await sys.followup.get(
        "/v1/stats/series", headers=sys.admin, params={**params, "format": "xlsx"}
    )
    sheet = load_workbook(io.BytesIO(r.content))["报表"]
    assert [c.value for c in sheet[1]][:3] == ["统计时段", "分组", "受理数"]
    assert [c.value for c in sheet[2]][:3] == [today, "labour", 5]
    assert sheet["N2"].value == 5  # 积压数

    # a month on, nothing new: the claims fall out of both windows and both warnings clear
    await scan(sys, sys.clock.now() + timedelta(days=31))
    for kind in ("group_risk", "rising_area"):
        items = await warnings(sys, kind=kind)
        assert items and all(w["status"] == "cleared" for w in items), items


async def test_soon_due_before_sign_for_and_before_the_court_deadline_and_the_extension(
    system: System,
) -> None:
    sys = system
    case_id = await submit(
        sys,
        report(
            "12345",
            "COURT-1",
            "市民来电反映：贵州某某商贸有限公司拖欠其货款15万元，多次催要未果。诉求：协调还款。",
            category="经济纠纷/合同",
            parties=[
                {"name": "赵明", "phone": "13600003333", "role": "applicant"},
                {"name": "贵州某某商贸有限公司", "role": "respondent"},
            ],
        ),
    )
    case = await mediation_case(sys, case_id, "assigned")
    assert case["channel"] == "court"
    sign_for_due = datetime.fromisoformat(case["sign_for_due"].replace("Z", "+00:00"))

    async def ledger_knows_deadlines() -> bool:
        # the scan reads the ledger, which hears of the assignment through the trail after
        # mediation answers: scanning before it does would find nothing to warn of
        r = await sys.followup.get(f"/v1/cases/{case_id}", headers=sys.admin)
        return r.status_code == 200 and r.json()["sign_for_due"] is not None

    await eventually(ledger_knows_deadlines, what="the ledger's sign-for deadline")
    sys.clock.current = sign_for_due - timedelta(minutes=1)  # every service's clock moves
    await scan(sys, sys.clock.now())
    sign = await warning_where(sys, "soon_due sign_for", kind="soon_due", case_ids=[case_id])
    assert sign["facts"]["deadline"] == "sign_for" and sign["status"] == "open"
    who = mediator_of(sys, case)
    assert (await sys.mediation.post(f"/v1/cases/{case_id}/accept", headers=who)).status_code == 200
    await warning_where(
        sys,
        "sign-for warning cleared",
        kind="soon_due",
        warning_id=sign["warning_id"],
        status="cleared",
    )
    r = await sys.mediation.post(f"/v1/cases/{case_id}/notes", headers=who, json={"text": "调解中"})
    assert r.status_code == 201

    due = datetime.fromisoformat(case["mediation_due"].replace("Z", "+00:00"))
    sys.clock.current = due - timedelta(days=2)
    await scan(sys, sys.clock.now())

    async def mediation_warning() -> Any:
        items = await warnings(sys, kind="soon_due", status="open")
        return next((w for w in items if w["facts"]["deadline"] == "mediation"), None)

    near = await eventually(mediation_warning, what="soon_due mediation")
    r = await sys.mediation.post(
        f"/v1/cases/{case_id}/extension", headers=who, json={"reason": "双方申请延期继续协商"}
    )
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["mediation_due"]) == due + timedelta(days=30)
    await warning_where(
        sys, "extension clears it", kind="soon_due", warning_id=near["warning_id"], status="cleared"
    )
    extended = (due + timedelta(days=30)).isoformat().replace("+00:00", "Z")

    async def ledger_extended() -> bool:
        r = await sys.followup.get(f"/v1/cases/{case_id}", headers=sys.admin)
        return bool(r.json()["mediation_due"] == extended)

    await eventually(ledger_extended, what="the ledger's deadline moved by the extension")
    extend = [e for e in await trail(sys, case_id) if e["action"] == "extend"]
    assert len(extend) == 1 and extend[0]["actor_role"] == "mediator"
