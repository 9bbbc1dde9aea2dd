"""Feedback to the sources follows the case's causal order whatever order the trail arrives in."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from services.intake.repository import TABLES
from shared.bus import OutgoingMessage
from tests.causal import LIFE, case_life, shuffled
from tests.unit.intake.conftest import Intake, report


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_feedback_is_sent_in_causal_order(intake: Intake, seed: int) -> None:
    receipt = (await intake.post(report("12345", "WO-C"))).json()
    await intake.settle()
    case_id = receipt["case_id"]
    [receive] = [e for e in intake.events(intake.topics.trail) if e.case_id == case_id]
    assert receive.payload["seq"] == 1 and receive.payload["follows"] == []
    for env in shuffled(case_life(case_id, first=receive), seed):
        await intake.bus.publish([OutgoingMessage(intake.topics.trail, case_id, env.to_bytes())])
        await intake.settle()
    statuses = [
        json.loads(m.value)["status"] for m in intake.bus.log[intake.topics.feedback("12345")]
    ]
    transitions = [to for _, _, frm, to, _ in LIFE if frm != to]
    assert statuses == transitions  # received, triaged, assigned, … closed: never backwards
    status = await intake.client.get(
        "/v1/reports/12345/WO-C", headers={"X-API-Key": intake.keys["12345"]}
    )
    assert status.json()["status"] == "closed"
    async with intake.app.state.runtime.sessions() as s:
        assert (await s.exec(select(TABLES.parked))).all() == []
