"""并单 is no oracle: a sender never learns that another sender reported the same parties.

Reports from different integrators (even on one source) never merge: the second sender gets a
new case, `merged: false`, and a status that counts only its own reports. Triage still hears the
repeat: the new case's report.received carries the parties' open cases elsewhere.
"""

from __future__ import annotations

from services.intake.integrators import create_integrator
from tests.unit.intake.conftest import Intake, report

PHONE = "13700002222"


def with_party(source: str, ref: str) -> dict:
    return report(
        source,
        ref,
        text="楼上漏水，邻居吵架。",
        parties=[{"name": "赵六", "role": "applicant", "phone": PHONE}],
    )


async def test_another_integrators_report_of_the_same_party_reveals_nothing(
    intake: Intake,
) -> None:
    h = intake.app.state.handlers
    other = await create_integrator(
        h.delivery.sessions, h.cipher, name="another 12345 hotline", source="12345"
    )
    first = (await intake.post(with_party("12345", "O-1"))).json()
    probe = await intake.post(with_party("12345", "O-2"), key=other.api_key)
    cross_source = await intake.post(with_party("110", "O-3"))
    for r in (probe, cross_source):
        assert r.status_code == 202
        assert r.json()["merged"] is False and r.json()["case_id"] != first["case_id"]
        assert first["case_id"] not in r.text
    status = await intake.client.get("/v1/reports/12345/O-2", headers={"X-API-Key": other.api_key})
    assert status.status_code == 200
    body = status.json()
    assert body["merged"] is False and body["repeat_count"] == 1
    assert body["case_id"] == probe.json()["case_id"] and first["case_id"] not in status.text
    # nor can it read the first sender's report under the same source
    theirs = await intake.client.get("/v1/reports/12345/O-1", headers={"X-API-Key": other.api_key})
    assert theirs.status_code == 404

    # the repeat still feeds severity: triage hears that the parties are in other open cases
    await intake.settle()
    received = {
        e.payload["source_ref"]: e.payload["repeat_count"]
        for e in intake.events(intake.topics.reports, "report.received")
    }
    assert received == {"O-1": 1, "O-2": 2, "O-3": 3}


async def test_the_same_sender_still_merges(intake: Intake) -> None:
    a = (await intake.post(with_party("grid", "S-1"))).json()
    b = (await intake.post(with_party("grid", "S-2"))).json()
    assert b["merged"] is True and b["case_id"] == a["case_id"]
