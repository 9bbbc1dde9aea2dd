"""On the real broker: the ledger reads the fields the producers write (two bugs that lived in
the untyped trail details: the supervision kind, and the parties nobody wrote)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.conftest import System, eventually
from tests.e2e.test_case_lives import mediation_case, pick, submit

pytestmark = pytest.mark.kafka


async def test_a_missed_sign_for_shows_as_sign_for_overdue_in_the_ledger(
    system: System, samples: list[dict[str, Any]]
) -> None:
    case_id = await submit(system, pick(samples, channel="people", tier="grid"))
    await mediation_case(system, case_id, "assigned")
    system.clock.current += timedelta(days=2)
    r = await system.mediation.post("/v1/admin/supervision/scan", headers=system.admin)
    assert {"case_id": case_id, "kind": "sign_for_overdue"} in r.json()["raised"]

    async def flagged() -> Any:
        r = await system.followup.get(f"/v1/cases/{case_id}", headers=system.admin)
        return r.json() if r.json().get("overdue") else None

    case = await eventually(flagged, what="overdue in the ledger")
    assert case["sign_for_overdue"] is True
    assert case["mediation_overdue"] is False  # was True: the ledger read `kind`, not `supervision`


async def test_the_ledger_shows_the_reports_parties_masked(
    system: System, samples: list[dict[str, Any]]
) -> None:
    report = pick(samples, channel="people", tier="grid")
    report["parties"] = [
        {"name": "张三丰", "role": "complainant", "phone": "13812345678"},
        {"name": "某某物业管理有限公司", "role": "respondent"},
    ]
    case_id = await submit(system, report)

    async def with_parties() -> Any:
        r = await system.followup.get(f"/v1/cases/{case_id}", headers=system.admin)
        return r.json() if r.status_code == 200 and r.json()["parties"] else None

    case = await eventually(with_parties, what="parties in the ledger")
    displays = {p["kind"]: p["display"] for p in case["parties"]}
    assert displays["person"].startswith("张") and "*" in displays["person"]
    assert "张三丰" not in str(case) and "13812345678" not in str(case)
    assert displays["organisation"] == "某某物业管理有限公司"
