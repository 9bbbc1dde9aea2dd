"""Whole lives of cases through the four services and the real broker, trails verified."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from tests.conftest import BOOTSTRAP
from tests.e2e.conftest import System, eventually

pytestmark = pytest.mark.kafka


def pick(samples: list[dict[str, Any]], **expected: str) -> dict[str, Any]:
    """A sample report with the expected labels, without its labels."""
    for s in samples:
        if all(s["expected"][k] == v for k, v in expected.items()):
            return {k: v for k, v in s.items() if k not in ("expected", "why")}
    raise LookupError(expected)


async def submit(sys: System, report: dict[str, Any]) -> str:
    r = await sys.intake.post(
        "/v1/reports", json=report, headers={"X-API-Key": sys.keys[report["source"]]}
    )
    assert r.status_code == 202, r.text
    case_id: str = r.json()["case_id"]
    return case_id


async def mediation_case(sys: System, case_id: str, status: str | None = None) -> Any:
    async def probe() -> Any:
        r = await sys.mediation.get(f"/v1/mediation/cases/{case_id}", headers=sys.admin)
        if r.status_code != 200:
            return None
        body = r.json()
        return body if status is None or body["status"] == status else None

    return await eventually(probe, what=f"mediation case {status}")


async def ledger_status(sys: System, case_id: str, status: str) -> Any:
    async def probe() -> Any:
        r = await sys.followup.get(f"/v1/cases/{case_id}", headers=sys.admin)
        return r.json() if r.status_code == 200 and r.json()["status"] == status else None

    return await eventually(probe, what=f"ledger status {status}")


def mediator_of(sys: System, case: dict[str, Any]) -> dict[str, str]:
    if case["mediator_id"]:
        return sys.token_of(case["mediator_id"])
    return sys.staff_of("mediator", organisation=case["organisation_id"])


async def trail(sys: System, case_id: str) -> list[dict[str, Any]]:
    """The case's trail, verified: the trail and its verification are two requests, and an entry
    may land between them, so the pair is read again until the trail stood still across it."""

    async def read() -> list[dict[str, Any]]:
        r = await sys.followup.get(f"/v1/cases/{case_id}/trail", headers=sys.admin)
        assert r.status_code == 200
        entries: list[dict[str, Any]] = r.json()["entries"]
        return entries

    entries = await read()
    for _ in range(50):
        path = f"/v1/cases/{case_id}/trail/verify"
        verify = (await sys.followup.get(path, headers=sys.admin)).json()
        assert verify["valid"] is True
        after = await read()
        if after == entries and verify["entries"] == len(entries):
            return entries
        entries = after
        await asyncio.sleep(0.2)
    raise AssertionError(f"the trail of {case_id} kept changing: {len(entries)} entries")


def statuses(entries: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [
        (e["from_status"], e["to_status"]) for e in entries if e["from_status"] != e["to_status"]
    ]


async def reach_agreement(sys: System, case_id: str) -> dict[str, str]:
    case = await mediation_case(sys, case_id, "assigned")
    who = mediator_of(sys, case)
    r = await sys.mediation.post(f"/v1/cases/{case_id}/accept", headers=who)
    assert r.status_code == 200, r.text
    r = await sys.mediation.post(
        f"/v1/cases/{case_id}/notes", headers=who, json={"text": "双方到场，初步沟通"}
    )
    assert r.status_code == 201, r.text
    r = await sys.mediation.post(
        f"/v1/cases/{case_id}/agreement",
        headers=who,
        json={"terms": "楼上住户三日内修复防水层并赔偿800元", "amount_yuan": 800},
    )
    assert r.status_code == 201, r.text
    return who


async def test_report_to_closed_case_with_full_ordered_trail(
    system: System, samples: list[dict[str, Any]]
) -> None:
    report = pick(samples, channel="people", tier="grid")
    case_id = await submit(system, report)
    who = await reach_agreement(system, case_id)
    await ledger_status(system, case_id, "follow_up")
    for _ in range(2):
        r = await system.followup.post(
            f"/v1/cases/{case_id}/visits",
            headers=who,
            json={"method": "phone", "honoured": True, "satisfaction": 5},
        )
        assert r.status_code == 201, r.text
    closed = await ledger_status(system, case_id, "closed")
    assert closed["channel"] == "people" and closed["tier"] == "grid"

    entries = await trail(system, case_id)
    assert statuses(entries) == [
        (None, "received"),
        ("received", "triaged"),
        ("triaged", "assigned"),
        ("assigned", "accepted"),
        ("accepted", "mediating"),
        ("mediating", "agreed"),
        ("agreed", "follow_up"),
        ("follow_up", "closed"),
    ]
    ats = [e["at"] for e in entries]
    assert ats == sorted(ats)
    triaged = next(e for e in entries if e["to_status"] == "triaged")
    assert triaged["details"]["rule_id"] and triaged["details"]["reasons"]
    assert {e["actor"] for e in entries} >= {"system:triage"}
    assert any(e["actor"].startswith("user:") for e in entries)

    async def source_sees_closed() -> Any:
        r = await system.intake.get(
            f"/v1/reports/{report['source']}/{report['source_ref']}",
            headers={"X-API-Key": system.keys[report["source"]]},
        )
        return r.json() if r.json().get("status") == "closed" else None

    status = await eventually(source_sees_closed, what="status back at intake")
    assert status["case_id"] == case_id

    consumer = AIOKafkaConsumer(
        f"{system.prefix}feedback.{report['source']}",
        bootstrap_servers=BOOTSTRAP,
        group_id=f"{system.prefix}fb",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen: list[str] = []

        async def all_feedback() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    assert rec.key == report["source_ref"].encode()
                    seen.append(json.loads(rec.value)["status"])
            return "closed" in seen

        await eventually(all_feedback, what="feedback topic")
    finally:
        await consumer.stop()
    assert seen[0] == "received" and seen[-1] == "closed"
    assert "agreed" in seen and "assigned" in seen
