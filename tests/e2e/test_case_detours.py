"""The other lives of a case: returned, failed and escalated, transferred, reopened, overdue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.conftest import System, eventually
from tests.e2e.test_case_lives import (
    ledger_status,
    mediation_case,
    mediator_of,
    pick,
    reach_agreement,
    statuses,
    submit,
    trail,
)

pytestmark = pytest.mark.kafka


async def act(
    sys: System,
    case_id: str,
    action: str,
    who: dict[str, str],
    body: dict[str, Any] | None = None,
    expect: int = 200,
) -> dict[str, Any]:
    r = await sys.mediation.post(f"/v1/cases/{case_id}/{action}", headers=who, json=body)
    assert r.status_code == expect, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_returned_case_is_rerouted_to_another_channel(
    system: System, samples: list[dict[str, Any]]
) -> None:
    case_id = await submit(system, pick(samples, channel="people", tier="grid"))
    case = await mediation_case(system, case_id, "assigned")
    await act(
        system,
        case_id,
        "return",
        mediator_of(system, case),
        {"reason": "属于借贷纠纷，不归本委员会"},
    )

    async def assigned_elsewhere() -> Any:
        r = await system.mediation.get(f"/v1/mediation/cases/{case_id}", headers=system.admin)
        b = r.json()
        return b if b["status"] == "assigned" and b["channel"] != "people" else None

    again = await eventually(assigned_elsewhere, what="re-routed assignment")
    assert again["return_count"] == 1
    await ledger_status(system, case_id, "assigned")
    assert statuses(await trail(system, case_id))[2:] == [
        ("triaged", "assigned"),
        ("assigned", "returned"),
        ("returned", "triaged"),
        ("triaged", "assigned"),
    ]


async def test_failed_mediation_is_escalated_to_the_next_tier(
    system: System, samples: list[dict[str, Any]]
) -> None:
    case_id = await submit(system, pick(samples, channel="people", tier="grid"))
    case = await mediation_case(system, case_id, "assigned")
    who = mediator_of(system, case)
    await act(system, case_id, "accept", who)
    await act(system, case_id, "notes", who, {"text": "双方分歧大"}, expect=201)
    await act(system, case_id, "failure", who, {"reason": "一方拒绝调解"})
    await act(system, case_id, "escalate", who, {"reason": "村级调解不成"})
    up = await mediation_case(system, case_id, "assigned")
    assert up["tier"] == "town" and up["first_tier"] == "grid" and up["escalations"] == 1

    async def escalated_in_ledger() -> Any:
        r = await system.followup.get(f"/v1/cases/{case_id}", headers=system.admin)
        b = r.json()
        return b if b["status"] == "assigned" and b["escalation_count"] == 1 else None

    entry = await eventually(escalated_in_ledger, what="escalation in the ledger")
    assert entry["tier"] == "town" and entry["first_tier"] == "grid"
    assert statuses(await trail(system, case_id))[-4:] == [
        ("accepted", "mediating"),
        ("mediating", "failed"),
        ("failed", "escalated"),
        ("escalated", "assigned"),
    ]


async def test_failed_mediation_is_transferred_to_litigation_and_closed(
    system: System, samples: list[dict[str, Any]]
) -> None:
    case_id = await submit(system, pick(samples, channel="people", tier="grid"))
    case = await mediation_case(system, case_id, "assigned")
    who = mediator_of(system, case)
    await act(system, case_id, "accept", who)
    await act(system, case_id, "notes", who, {"text": "调解中"}, expect=201)
    await act(system, case_id, "failure", who, {"reason": "调解不成"})
    await act(system, case_id, "transfer", who, {"target": "litigation", "reason": "引导诉讼"})
    await ledger_status(system, case_id, "transferred")
    assert statuses(await trail(system, case_id))[-1] == ("failed", "transferred")
    # the state machine refuses anything after the end
    await act(system, case_id, "notes", who, {"text": "再补充"}, expect=409)


async def test_broken_agreement_reopens_the_case_until_it_is_honoured(
    system: System, samples: list[dict[str, Any]]
) -> None:
    case_id = await submit(system, pick(samples, channel="people", tier="grid"))
    who = await reach_agreement(system, case_id)
    await ledger_status(system, case_id, "follow_up")
    r = await system.followup.post(
        f"/v1/cases/{case_id}/visits",
        headers=who,
        json={"method": "visit", "honoured": False, "satisfaction": 2, "note": "未按期修复"},
    )
    assert r.status_code == 201, r.text
    await mediation_case(system, case_id, "mediating")
    await act(
        system,
        case_id,
        "agreement",
        who,
        {"terms": "一周内修复并赔偿1000元", "amount_yuan": 1000},
        expect=201,
    )
    await ledger_status(system, case_id, "follow_up")
    for _ in range(2):
        r = await system.followup.post(
            f"/v1/cases/{case_id}/visits",
            headers=who,
            json={"method": "wechat", "honoured": True, "satisfaction": 4},
        )
        assert r.status_code == 201, r.text
    await ledger_status(system, case_id, "closed")
    assert statuses(await trail(system, case_id))[-6:] == [
        ("agreed", "follow_up"),
        ("follow_up", "reopened"),
        ("reopened", "mediating"),
        ("mediating", "agreed"),
        ("agreed", "follow_up"),
        ("follow_up", "closed"),
    ]


async def test_unsigned_case_goes_overdue_and_raises_a_supervision_notice(
    system: System, samples: list[dict[str, Any]]
) -> None:
    report = pick(samples, channel="people", tier="grid")
    assert not (report.get("location") or {}).get("grid_code")
    case_id = await submit(system, report)
    case = await mediation_case(system, case_id, "assigned")
    assert case["tier"] == "grid"
    system.clock.current += timedelta(days=2)  # low severity: sign for within 24 h
    r = await system.mediation.post("/v1/admin/supervision/scan", headers=system.admin)
    assert r.status_code == 200
    assert {"case_id": case_id, "kind": "sign_for_overdue"} in r.json()["raised"]
    # the sample has no location: it lies in no one's area, so the notice is the county
    # centre's to act on (shared/scope.py); the grid tier's coordinator does not see it
    for tier, sees in (("county", True), (case["tier"], False)):
        coordinator = system.staff_of("coordinator", tier=tier)
        listed = (await system.mediation.get("/v1/supervisions", headers=coordinator)).json()
        items = listed["items"] if isinstance(listed, dict) else listed
        assert any(s["case_id"] == case_id for s in items) is sees, tier

    async def overdue_in_ledger() -> Any:
        r = await system.followup.get("/v1/cases", params={"overdue": "true"}, headers=system.admin)
        return [c for c in r.json()["items"] if c["case_id"] == case_id]

    await eventually(overdue_in_ledger, what="overdue flag in the ledger")
    entries = await trail(system, case_id)
    assert any(e["action"] == "supervise" for e in entries)
