"""The court's one extension (延期 +30 days): once, court channel only, on the trail and in the
deadline maths (no supervision at the old deadline; on time against the new one)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.unit.mediation.conftest import Svc

COURT = "med-court-town-day"


async def court_case(svc: Svc) -> str:
    cid = await svc.triaged(channel="court", dispute_type="debt_contract")
    await svc.act(cid, "accept", COURT)
    await svc.act(cid, "notes", COURT, {"text": "双方到庭，分歧在利息"}, expect=201)
    return cid


async def test_extension_moves_the_deadline_once_and_is_on_the_trail(svc: Svc) -> None:
    cid = await court_case(svc)
    due = datetime.fromisoformat((await svc.case(cid))["mediation_due"])
    body = await svc.act(cid, "extension", COURT, {"reason": "当事人申请延期，电话13812345678"})
    assert datetime.fromisoformat(body["mediation_due"]) == due + timedelta(days=30)
    case = await svc.case(cid)
    assert datetime.fromisoformat(case["mediation_due"]) == due + timedelta(days=30)
    assert case["extended_at"] is not None and case["status"] == "mediating"
    last = svc.trail(cid)[-1]
    assert (last["action"], last["from_status"], last["to_status"]) == (
        "extend",
        "mediating",
        "mediating",
    )
    assert datetime.fromisoformat(last["details"]["mediation_due"]) == due + timedelta(days=30)
    assert datetime.fromisoformat(last["details"]["previous_mediation_due"]) == due
    assert "延期30日" in last["reason"] and "13812345678" not in last["reason"]
    # once only
    again = await svc.act(cid, "extension", COURT, {"reason": "再次申请"}, expect=409)
    assert "already extended" in again["detail"]

    # the old deadline passes without a supervision notice; the new one raises it
    svc.clock.advance(timedelta(days=31))
    assert await svc.scan() == []
    svc.clock.advance(timedelta(days=30))
    assert [r.kind for r in await svc.scan()] == ["mediation_overdue"]


async def test_agreement_inside_the_extension_is_on_time(svc: Svc) -> None:
    cid = await court_case(svc)
    await svc.act(cid, "extension", COURT, {"reason": "当事人申请"})
    svc.clock.advance(timedelta(days=40))
    await svc.act(cid, "agreement", COURT, {"terms": "分期还款"}, expect=201)
    agree = svc.trail(cid)[-1]
    assert agree["action"] == "agree" and agree["details"]["agreed_on_time"] is True


async def test_extension_refused_outside_the_court_channel_and_after_the_deadline(
    svc: Svc,
) -> None:
    people = await svc.triaged()
    await svc.act(people, "accept", "med-people-town-day")
    r = await svc.act(people, "extension", "med-people-town-day", {"reason": "x"}, expect=409)
    assert "court" in r["detail"]

    late = await court_case(svc)
    svc.clock.advance(timedelta(days=31))
    r = await svc.act(late, "extension", COURT, {"reason": "x"}, expect=409)
    assert "passed" in r["detail"]

    waiting = await svc.triaged(channel="court", dispute_type="debt_contract")
    r = await svc.act(waiting, "extension", COURT, {"reason": "x"}, expect=409)
    assert "signed for" in r["detail"]
    # a coordinator does not extend: it is the mediator's action
    await svc.act(waiting, "extension", "coordinator-town", {"reason": "x"}, expect=403)


async def test_the_case_offers_extend_while_it_may_be_granted(svc: Svc) -> None:
    cid = await court_case(svc)
    assert "extend" in (await svc.case(cid, COURT))["allowed_actions"]
    await svc.act(cid, "extend", COURT, {"reason": "当事人申请"})  # the action's own name
    assert "extend" not in (await svc.case(cid, COURT))["allowed_actions"]
    people = await svc.triaged()
    await svc.act(people, "accept", "med-people-town-day")
    assert "extend" not in (await svc.case(people, "med-people-town-day"))["allowed_actions"]
