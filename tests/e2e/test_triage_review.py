"""Issue 10 end to end on the real broker: a doubtful report → review → correction → re-routed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import System, eventually
from tests.e2e.test_case_lives import mediation_case, submit, trail

pytestmark = pytest.mark.kafka

# a weapon is named but nobody is said to handle it: the rules stay below critical and say so
DOUBTFUL = "网格员：两家为排水沟争执，他家门后放着一把柴刀，邻居有些担心。"


async def test_doubtful_report_is_reviewed_corrected_and_rerouted(
    system: System, samples: list[dict[str, Any]]
) -> None:
    location = next(s["location"] for s in samples if s.get("location", {}).get("grid_code"))
    report = {
        "source": "grid",
        "source_ref": f"{system.prefix}-review-1",
        "text": DOUBTFUL,
        "location": location,
    }
    case_id = await submit(system, report)
    first = await mediation_case(system, case_id, "assigned")
    assert first["severity"] != "critical" and first["tier"] != "county"
    county = system.staff_of("coordinator", tier="county")

    async def queued() -> Any:
        r = await system.triage.get("/v1/triage/review", headers=county)
        assert r.status_code == 200, r.text
        return next((x for x in r.json()["reviews"] if x["case_id"] == case_id), None)

    item = await eventually(queued, what="case in the review queue")
    assert any("凶器" in c for c in item["review_cues"]) and item["overdue"] is False

    r = await system.triage.post(
        f"/v1/triage/cases/{case_id}/review",
        headers=county,
        json={"severity": "critical", "note": "回访核实：对方拿着菜刀站在门口"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["rerouted"] is True and r.json()["to"]["tier"] == "county"

    async def rerouted() -> Any:
        r = await system.mediation.get(f"/v1/mediation/cases/{case_id}", headers=system.admin)
        body = r.json()
        return body if body["tier"] == "county" and body["status"] == "assigned" else None

    again = await eventually(rerouted, what="re-assignment at county tier")
    assert again["severity"] == "critical" and again["channel"] == "police"
    assert (await system.triage.get("/v1/triage/review", headers=county)).json()["reviews"] == []

    async def corrected_in_trail() -> Any:
        entries = await trail(system, case_id)
        actions = [e["action"] for e in entries]
        return entries if "review_correct" in actions and actions[-1] == "reassign" else None

    entries = await eventually(corrected_in_trail, what="correction and reassignment in the trail")
    [fix] = [e for e in entries if e["action"] == "review_correct"]
    assert fix["actor"] == "coordinator-county" and "回访核实" in fix["reason"]
    assert fix["details"]["correction"]["from"]["severity"] == first["severity"]
    assert fix["details"]["correction"]["to"]["severity"] == "critical"
