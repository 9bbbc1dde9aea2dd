"""Free text that leaves its service carries no names, phones, ID numbers or door addresses.

The case's own people and address are masked by name; other people and doors by pattern
(surname + honorific, a role word before a name, road/village/estate + number).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.pii import redact_free_text, redact_text
from tests.unit.intake.conftest import Intake, report
from tests.unit.security.conftest import Running

CASES = [
    ("报警人张三丰称被打", "张三丰"),
    ("王建国先生反映楼上漏水", "王建国"),
    ("李秀英女士来电", "李秀英"),
    ("邻居刘芳称噪音扰民", "刘芳"),
    ("我叫赵大海，住在附近", "赵大海"),
    ("住幸福路12号3单元", "12号"),
    ("李家村3组5号的院墙倒了", "3组5号"),
    ("阳光小区5栋2单元301室漏水", "301室"),
    ("电话13812345678", "13812345678"),
    ("身份证522731199001011234", "522731199001011234"),
]


@pytest.mark.parametrize(("text", "secret"), CASES)
def test_names_and_addresses_found_by_pattern_are_masked(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out and "*" in out, out


def test_the_cases_own_people_and_address_are_masked_by_name() -> None:
    text = "赵大海与钱多多因南溪县城关镇东街12号3单元的房子吵架，城关派出所已到场。"
    out = redact_free_text(
        text, names=["赵大海", "钱多多"], addresses=["南溪县城关镇东街12号3单元"]
    )
    for secret in ("赵大海", "钱多多", "东街12号", "3单元"):
        assert secret not in out, out
    assert "城关派出所" in out and "吵架" in out  # the dispute itself stays readable


def test_ordinary_dispute_wording_is_left_alone() -> None:
    for text in (
        "工地二十多名工人被包工头拖欠工资八万多元，多次讨要未果。",
        "父亲和母亲在家吵架",
        "楼上漏水，协商未果",
        "张某某称被打",
    ):
        assert redact_text(text) == text


async def test_intake_events_trail_and_feedback_carry_no_personal_text(intake: Intake) -> None:
    text = "报警人钱七称邻居王建国先生在幸福路18号2单元门口打人，钱七电话13600003333。"
    r = await intake.post(
        report(
            "110",
            "RD-1",
            text=text,
            parties=[{"name": "钱七", "phone": "13600003333", "role": "applicant"}],
            location={"address": "南溪县城关镇幸福路18号2单元"},
        )
    )
    assert r.status_code == 202
    await intake.settle()
    await intake.publish_trail(
        r.json()["case_id"],
        "received",
        "triaged",
        details={"dispute_type": "neighbour"},
    )
    await intake.settle()
    outgoing: list[str] = []
    for topic, messages in intake.bus.log.items():
        if topic.endswith(".dlq"):
            continue
        outgoing += [m.value.decode("utf-8", "replace") for m in messages]
    leaving = "\n".join(
        json.dumps(json.loads(v), ensure_ascii=False) for v in outgoing if v.startswith("{")
    )
    assert (
        "幸福路18号2单元门口"
        not in text.replace("幸福路18号2单元门口", "") + leaving.split("sealed_contact")[0]
    )
    for secret in ("钱七", "王建国", "13600003333", "18号", "2单元"):
        assert secret not in _without_sealed(outgoing), secret


def _without_sealed(values: list[str]) -> str:
    """Every outgoing JSON value except the encrypted contact blob."""
    out: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k != "sealed_contact":
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        else:
            out.append(str(x))

    for v in values:
        try:
            walk(json.loads(v))
        except ValueError:
            out.append(v)
    return "\n".join(out)


async def test_a_status_reason_reaches_the_sender_masked(intake: Intake) -> None:
    r = await intake.post(report("12345", "RD-2"))
    await intake.settle()
    entry_reason = "回访：王建国先生称幸福路12号的赔偿未付，电话13811112222"
    from tests.unit.intake.conftest import Intake as _  # noqa: F401 - the harness type

    await intake.publish_trail(r.json()["case_id"], "received", "triaged")
    await intake.settle()
    from shared.contracts import REGISTRY, TrailAppended
    from shared.events import utcnow

    entry = TrailAppended(
        case_id=r.json()["case_id"],
        at=utcnow(),
        actor="system:followup",
        action="reopen",
        from_status="triaged",
        to_status="reopened",
        reason=entry_reason,
    )
    env = REGISTRY.event(
        entry, event_type="trail.appended", producer="followup", case_id=entry.case_id
    )
    from shared.bus import OutgoingMessage

    await intake.bus.publish([OutgoingMessage(intake.topics.trail, entry.case_id, env.to_bytes())])
    await intake.settle()
    feedback = [json.loads(m.value) for m in intake.bus.log[intake.topics.feedback("12345")]]
    reasons = [f["reason"] for f in feedback if f["status"] == "reopened"]
    assert reasons and all(s not in reasons[0] for s in ("王建国", "12号", "13811112222")), reasons


async def test_mediation_trail_reasons_are_masked(running: Running) -> None:
    if running.name != "mediation":
        return
    from shared.auth import StaffPrincipal
    from tests.unit.security.conftest import MEDIATOR_A, ORG_A

    me = running.bearer(
        StaffPrincipal(MEDIATOR_A, "mediator", channel="people", organisation=ORG_A)
    )
    reason = "张三丰说不是本渠道的事，邻居王建国先生住东街12号3单元"
    r = await running.client.post(
        f"/v1/cases/{running.case_a}/return", headers=me, json={"reason": reason}
    )
    assert r.status_code == 200, r.text
    await running.settle()
    bus = running.app.state.runtime.bus
    leaving = _without_sealed([m.value.decode() for msgs in bus.log.values() for m in msgs])
    assert "不是本渠道的事" in leaving
    for secret in ("张三丰", "王建国", "12号", "3单元"):
        assert secret not in leaving, secret
