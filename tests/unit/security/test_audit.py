"""Every response that shows personal data in clear leaves an audit row (who, when, which case,
which fields), and admins read them at GET /v1/admin/audit on each service."""

from __future__ import annotations

from shared.auth import StaffPrincipal
from tests.unit.security.conftest import MEDIATOR_A, ORG_A, Running

MEDIATOR = StaffPrincipal(MEDIATOR_A, "mediator", channel="people", organisation=ORG_A)
VIEWER = StaffPrincipal("v-here", "viewer", grid_codes=("522731",))
COORDINATOR = StaffPrincipal("c-town", "coordinator", tier="town", grid_codes=("522731",))
ADMIN = StaffPrincipal("root", "admin")


async def _clear_read(r: Running, who: StaffPrincipal) -> None:
    if r.name == "intake":
        res = await r.client.get(f"/v1/cases/{r.case_a}/reports", headers=r.bearer(who))
    elif r.name == "mediation":
        res = await r.client.get(f"/v1/mediation/cases/{r.case_a}", headers=r.bearer(who))
    else:
        res = await r.client.get(f"/v1/cases/{r.case_a}/visits", headers=r.bearer(who))
    assert res.status_code == 200, res.text


async def test_clear_reads_are_audited_and_masked_reads_are_not(running: Running) -> None:
    r = running
    if r.name == "triage":  # triage shows no personal data in clear
        res = await r.client.get("/v1/admin/audit", headers=r.bearer(ADMIN))
        assert res.status_code == 200 and res.json()["items"] == []
        return
    if r.name == "followup":  # a note to read: recorded by the mediator the case is assigned to
        res = await r.client.post(
            f"/v1/cases/{r.case_a}/visits",
            headers=r.bearer(MEDIATOR),
            json={"method": "phone", "honoured": True, "note": "张三丰已付款"},
        )
        assert res.status_code == 201, res.text
    await _clear_read(r, COORDINATOR)
    await _clear_read(r, VIEWER)  # masked: no row
    res = await r.client.get(
        "/v1/admin/audit", headers=r.bearer(ADMIN), params={"case_id": r.case_a}
    )
    assert res.status_code == 200
    rows = res.json()["items"]
    readers = {row["subject"] for row in rows}
    assert "c-town" in readers and "v-here" not in readers, rows
    row = next(x for x in rows if x["subject"] == "c-town")
    assert row["case_id"] == r.case_a and row["fields"] and row["at"] and row["role"]
    assert r.case_b not in res.text
    for who in (COORDINATOR, MEDIATOR, VIEWER):
        assert (await r.client.get("/v1/admin/audit", headers=r.bearer(who))).status_code == 403
