"""Each mediator action: its trail entry, its events, and 409 when the state machine refuses."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from services.mediation.channels.base import CaseView
from tests.unit.mediation.conftest import Svc, dump


async def test_accept_note_agreement_produces_trail_event_and_document(svc: Svc) -> None:
    cid = await svc.triaged()
    me = "med-people-town-day"
    body = await svc.act(cid, "accept", me)
    assert body["status"] == "accepted" and body["mediator_id"] == me
    body = await svc.act(cid, "notes", me, {"text": "已约双方到村委会面谈"}, expect=201)
    assert body["status"] == "mediating"
    body = await svc.act(cid, "notes", me, {"text": "第二次面谈"}, expect=201)
    assert body["status"] == "mediating"
    due = (svc.clock.now() + timedelta(days=20)).isoformat()
    body = await svc.act(
        cid,
        "agreement",
        me,
        {"terms": "李四光赔偿张三丰修缮费", "amount_yuan": 3000, "performance_due": due},
        expect=201,
    )
    assert body["status"] == "agreed"
    await svc.flush()

    trail = svc.trail(cid)
    assert [(t["action"], t["from_status"], t["to_status"]) for t in trail] == [
        ("assign", "triaged", "assigned"),
        ("accept", "assigned", "accepted"),
        ("note", "accepted", "mediating"),
        ("note", "mediating", "mediating"),
        ("agree", "mediating", "agreed"),
    ], dump(trail)
    assert trail[1]["actor"] == f"user:{me}" and trail[1]["actor_role"] == "mediator"
    assert trail[-1]["details"]["amount_yuan"] == 3000
    assert "张三丰" not in dump(trail)  # no personal data in the trail

    agreed = svc.events(svc.topics.mediation, cid, "case.agreed")
    assert len(agreed) == 1
    p = agreed[0].payload
    assert p["terms"] == "李*光赔偿张*丰修缮费"  # events carry no names in clear
    assert (p["channel"], p["tier"], p["organisation_id"], p["mediator_id"], p["amount_yuan"]) == (
        "people",
        "town",
        "people-town",
        me,
        3000,
    )

    r = await svc.client.get(f"/v1/cases/{cid}/agreement/document", headers=svc.token(me))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "测试调解协议书" in r.text and "3,000 元" in r.text and "张三丰" in r.text
    r = await svc.client.get(
        f"/v1/cases/{cid}/agreement/document", headers=svc.token("viewer-county")
    )
    assert r.status_code == 200 and "张三丰" not in r.text and "138****5678" not in r.text

    assert ("agreement", cid, body["agreement_id"]) in svc.people.calls


async def test_a_due_time_outside_the_calendar_is_refused_and_the_case_stays(svc: Svc) -> None:
    """The agreement's document prints the due day in the service's zone: a due time whose day
    there leaves the calendar is a 422 naming the field, not a 500 when the document prints."""
    cid = await svc.triaged()
    me = "med-people-town-day"
    await svc.act(cid, "accept", me)
    await svc.act(cid, "notes", me, {"text": "已约双方面谈"}, expect=201)
    for due in ("9999-12-31T23:00:00-08:00", "9999-12-31T20:00:00+00:00", "1999-12-31T00:00:00"):
        body = await svc.act(
            cid, "agreement", me, {"terms": "赔偿修缮费", "performance_due": due}, expect=422
        )
        assert "performance_due" in dump(body), body
    assert (await svc.case(cid, me))["status"] == "mediating"
    assert [t["action"] for t in svc.trail(cid)] == ["assign", "accept", "note"]
    body = await svc.act(
        cid,
        "agreement",
        me,
        {"terms": "赔偿修缮费", "performance_due": "9999-12-30T12:00:00+00:00"},
        expect=201,
    )
    r = await svc.client.get(f"/v1/cases/{cid}/agreement/document", headers=svc.token(me))
    assert r.status_code == 200 and "履行期限：9999年12月30日" in r.text


async def test_an_amount_beyond_its_column_is_refused_and_the_case_stays(svc: Svc) -> None:
    """agreements.amount_yuan is a 32-bit INTEGER on PostgreSQL: 10,000,000,000 yuan passed the
    request model and then failed the INSERT with a 500. Past 2**31 - 1 it is a 422 naming it."""
    cid = await svc.triaged()
    me = "med-people-town-day"
    await svc.act(cid, "accept", me)
    await svc.act(cid, "notes", me, {"text": "已约双方面谈"}, expect=201)
    for amount in (2**31, 10_000_000_000):
        body = await svc.act(
            cid, "agreement", me, {"terms": "赔偿修缮费", "amount_yuan": amount}, expect=422
        )
        assert [e["field"] for e in body["errors"]] == ["amount_yuan"], body
    assert (await svc.case(cid, me))["status"] == "mediating"
    body = await svc.act(
        cid, "agreement", me, {"terms": "赔偿修缮费", "amount_yuan": 2**31 - 1}, expect=201
    )
    assert (await svc.case(cid, me))["agreement"]["amount_yuan"] == 2**31 - 1


async def test_a_nul_character_in_free_text_is_refused_and_the_case_stays(svc: Svc) -> None:
    """PostgreSQL text cannot hold a NUL character: a reason with one reached the trail row and
    failed the commit with a 500 (return, failure, escalation, transfer, extension, assignment).
    A reason or an id with one is a 422 naming the field instead, and nothing moves (notes and
    terms are stored encrypted: they may hold one)."""
    nul = {"field": "reason", "reason": "Value error, contains a NUL character"}
    cid = await svc.triaged()
    me = "med-people-town-day"
    assign = {"organisation_id": "people-town", "mediator_id": me, "reason": "指派\x00"}
    body = await svc.act(cid, "assign", "admin", assign, expect=422)
    assert body["errors"] == [nul]
    assign = {"organisation_id": "people-town\x00", "mediator_id": f"{me}\x00"}
    body = await svc.act(cid, "assign", "admin", assign, expect=422)
    assert [e["field"] for e in body["errors"]] == ["organisation_id", "mediator_id"], body
    body = await svc.act(cid, "return", me, {"reason": "非本渠道\x00"}, expect=422)
    assert body["errors"] == [nul]
    await svc.act(cid, "accept", me)
    await svc.act(cid, "notes", me, {"text": "已约双方面谈"}, expect=201)
    assert (await svc.act(cid, "failure", me, {"reason": "分歧\x00"}, expect=422))["errors"] == [
        nul
    ]
    await svc.act(cid, "failure", me, {"reason": "双方分歧较大"})
    for action, sent in (
        ("escalate", {"reason": "上交\x00"}),
        ("transfer", {"target": "litigation", "reason": "转诉讼\x00"}),
    ):
        assert (await svc.act(cid, action, me, sent, expect=422))["errors"] == [nul]
    assert (await svc.case(cid, me))["status"] == "failed"
    court = await svc.triaged(channel="court")
    await svc.act(court, "accept", "med-court-town-day")
    body = await svc.act(
        court, "extension", "med-court-town-day", {"reason": "延期\x00"}, expect=422
    )
    assert body["errors"] == [nul]
    assert [t["action"] for t in svc.trail(cid)] == ["assign", "accept", "note", "fail"]
    assert [t["action"] for t in svc.trail(court)] == ["assign", "accept"]


async def test_notes_and_terms_are_encrypted_at_rest(svc: Svc) -> None:
    cid = await svc.triaged()
    me = "med-people-town-day"
    await svc.act(cid, "accept", me)
    await svc.act(cid, "notes", me, {"text": "张三丰电话13812345678同意调解"}, expect=201)
    async with svc.ctx.delivery.sessions() as s:
        rows = (await s.exec(text("select text from case_notes"))).all()  # type: ignore[call-overload]
    assert rows and "张三丰" not in rows[0][0]
    case = await svc.case(cid, me)
    assert case["notes"][0]["text"] == "张三丰电话13812345678同意调解"
    assert case["contact"]["parties"][0]["phone"] == "13812345678"
    masked = await svc.case(cid, "viewer-county")
    assert "13812345678" not in dump(masked) and masked["personal_data"] == "masked"
    assert masked["contact"]["parties"][0]["phone"] == "138****5678"


async def test_state_machine_refusals_answer_409_with_reason(svc: Svc) -> None:
    cid = await svc.triaged()
    me = "med-people-town-day"
    r = await svc.act(cid, "agreement", me, {"terms": "x"}, expect=409)
    assert "mediation" in r["detail"] and r["status"] == "assigned"
    await svc.act(cid, "notes", me, {"text": "x"}, expect=409)
    await svc.act(cid, "failure", me, {"reason": "x"}, expect=409)
    await svc.act(cid, "escalate", me, {"reason": "x"}, expect=409)
    await svc.act(cid, "transfer", me, {"target": "litigation", "reason": "x"}, expect=409)
    await svc.act(cid, "accept", me)
    r = await svc.act(cid, "accept", me, expect=409)
    assert "assigned" in r["detail"]
    await svc.act(cid, "agreement", me, {"terms": "x"}, expect=409)  # no progress recorded
    await svc.flush()
    assert [t["action"] for t in svc.trail(cid)] == ["assign", "accept"]


async def test_return_emits_case_returned_and_reroute_assigns_new_channel(svc: Svc) -> None:
    cid = await svc.triaged()
    body = await svc.act(cid, "return", "med-people-town-day", {"reason": "属劳动争议，非邻里"})
    assert body["status"] == "returned"
    await svc.flush()
    ret = svc.events(svc.topics.mediation, cid, "case.returned")
    assert [
        (e.payload["channel"], e.payload["return_count"], e.payload["excluded_channels"])
        for e in ret
    ] == [("people", 1, ["people"])]
    # triage routes it again, to labour
    await svc.triaged(
        cid, channel="labour", dispute_type="labour", attempt=2, excluded_channels=["people"]
    )
    case = await svc.case(cid)
    assert (case["status"], case["channel"], case["organisation_id"], case["mediator_id"]) == (
        "assigned",
        "labour",
        "labour-town",
        "med-labour-town-day",
    )
    assert [(t["action"], t["from_status"], t["to_status"]) for t in svc.trail(cid)][-2:] == [
        ("return", "assigned", "returned"),
        ("assign", "triaged", "assigned"),
    ]
    # the people mediator no longer sees it as theirs
    r = await svc.client.get(f"/v1/mediation/cases/{cid}", headers=svc.token("med-people-town-day"))
    assert r.status_code == 404


async def test_failure_then_escalate_assigns_next_tier_and_county_cannot(svc: Svc) -> None:
    cid = await svc.triaged(tier="grid")
    case = await svc.case(cid)
    assert (case["organisation_id"], case["mediator_id"]) == ("people-grid", "med-people-grid-day")
    me = "med-people-grid-day"
    await svc.act(cid, "accept", me)
    await svc.act(cid, "notes", me, {"text": "调解中"}, expect=201)
    await svc.act(cid, "failure", me, {"reason": "双方分歧大"})
    await svc.act(cid, "escalate", me, {"reason": "网格调解不成"})
    case = await svc.case(cid)
    assert (case["status"], case["tier"], case["organisation_id"], case["mediator_id"]) == (
        "assigned",
        "town",
        "people-town",
        "med-people-town-day",
    )
    assert case["first_tier"] == "grid" and case["escalations"] == 1
    await svc.flush()
    assert [(t["action"], t["from_status"], t["to_status"]) for t in svc.trail(cid)][-3:] == [
        ("fail", "mediating", "failed"),
        ("escalate", "failed", "escalated"),
        ("assign", "escalated", "assigned"),
    ]
    # town fails too, then the county coordinator escalates to the county
    town = "med-people-town-day"
    await svc.act(cid, "accept", town)
    await svc.act(cid, "notes", town, {"text": "再次调解"}, expect=201)
    await svc.act(cid, "failure", town, {"reason": "仍不成"})
    await svc.act(cid, "escalate", "coordinator-town", {"reason": "上交县级"})
    county = "med-people-county-day"
    await svc.act(cid, "accept", county)
    await svc.act(cid, "notes", county, {"text": "县级调解"}, expect=201)
    await svc.act(cid, "failure", county, {"reason": "不成"})
    r = await svc.act(cid, "escalate", county, {"reason": "?"}, expect=409)
    assert "county" in r["detail"]


async def test_transfer_closes_as_transferred_within_channel_targets(svc: Svc) -> None:
    cid = await svc.triaged()
    me = "med-people-town-day"
    await svc.act(cid, "accept", me)
    await svc.act(cid, "notes", me, {"text": "调解"}, expect=201)
    await svc.act(cid, "failure", me, {"reason": "不成"})
    r = await svc.act(cid, "transfer", me, {"target": "arbitration", "reason": "x"}, expect=409)
    assert "litigation" in r["detail"]
    body = await svc.act(cid, "transfer", me, {"target": "litigation", "reason": "引导起诉"})
    assert body["status"] == "transferred" and body["transfer_target"] == "litigation"
    assert ("transfer", cid, "litigation") in svc.people.calls
    await svc.act(cid, "accept", me, expect=409)

    lab = await svc.triaged(channel="labour", dispute_type="labour")
    m = "med-labour-town-day"
    await svc.act(lab, "accept", m)
    await svc.act(lab, "notes", m, {"text": "调解"}, expect=201)
    await svc.act(lab, "failure", m, {"reason": "不成"})
    body = await svc.act(lab, "transfer", m, {"target": "arbitration", "reason": "申请仲裁"})
    assert body["status"] == "transferred"


async def test_reopened_case_returns_to_mediation_and_closed_leaves_the_list(svc: Svc) -> None:
    cid = await svc.triaged()
    me = "med-people-town-day"
    await svc.act(cid, "accept", me)
    await svc.act(cid, "notes", me, {"text": "调解"}, expect=201)
    await svc.act(cid, "agreement", me, {"terms": "赔偿"}, expect=201)
    await svc.reopened(cid)
    case = await svc.case(cid)
    assert case["status"] == "mediating"
    assert [(t["action"], t["from_status"], t["to_status"]) for t in svc.trail(cid)][-1] == (
        "resume",
        "reopened",
        "mediating",
    )
    await svc.act(cid, "agreement", me, {"terms": "重新约定分期赔偿"}, expect=201)
    await svc.closed(cid)
    assert (await svc.case(cid))["status"] == "closed"
    r = await svc.client.get("/v1/mediation/cases?status=agreed", headers=svc.token(me))
    assert cid not in [c["case_id"] for c in r.json()["items"]]


async def test_coordinator_assigns_manual_case_after_two_returns(svc: Svc) -> None:
    cid = await svc.triaged(rule_id="R0-manual", tier="county", attempt=3)
    case = await svc.case(cid)
    assert (case["status"], case["organisation_id"], case["mediator_id"]) == (
        "assigned",
        "coord-county",
        None,
    )
    await svc.flush()
    assert "人工指派" in svc.trail(cid)[-1]["reason"]
    # a mediator cannot take it; the county coordinator assigns it by hand
    r = await svc.client.post(f"/v1/cases/{cid}/accept", headers=svc.token("med-people-county-day"))
    assert r.status_code == 404
    body = await svc.act(
        cid,
        "assign",
        "coordinator-county",
        {"organisation_id": "court-county", "reason": "涉企合同纠纷"},
    )
    assert (body["status"], body["channel"], body["organisation_id"], body["mediator_id"]) == (
        "assigned",
        "court",
        "court-county",
        "med-court-county-day",
    )
    r = await svc.act(cid, "assign", "coordinator-county", {"organisation_id": "nope"}, expect=422)
    assert r["errors"][0]["field"] == "organisation_id"


async def test_a_coordinator_assigns_only_to_organisations_they_see_that_work_where_the_case_is(
    svc: Svc,
) -> None:
    """The mediators of the organisation a case is handed to read it in clear: a coordinator
    may hand it only within their tier and area (DOMAIN.md §7), to one working at its place."""
    south = {"id": "people-south", "name": "二镇一网格人民调解委员会", "kind": "mediation"}
    south |= {"channel": "people", "tier": "grid", "grid_codes": ["522731002001"]}
    r = await svc.client.post("/v1/admin/organisations", headers=svc.token("admin"), json=south)
    assert r.status_code == 201, r.text
    cid = await svc.triaged(tier="grid")  # at grid 522731001001, coordinator-grid's area
    for who, org, why in (
        ("coordinator-grid", "people-town", "of their tier or below"),
        ("coordinator-grid", "people-south", "outside your area"),
        ("coordinator-county", "people-south", "does not work where the case is"),
    ):
        body = {"organisation_id": org, "reason": "改派"}
        refused = await svc.act(cid, "assign", who, body, expect=403)
        assert why in refused["detail"], (who, org)
    assert (await svc.case(cid))["organisation_id"] == "people-grid"  # nothing moved
    ok = await svc.act(cid, "assign", "coordinator-grid", {"organisation_id": "court-grid"})
    assert ok["organisation_id"] == "court-grid"
    admin = await svc.act(cid, "assign", "admin", {"organisation_id": "people-south"})
    assert admin["organisation_id"] == "people-south"  # an admin may (and is audited)


async def test_channel_plugin_told_of_assignment(svc: Svc) -> None:
    cid = await svc.triaged()
    assert ("assigned", cid, "people-town") in svc.people.calls
    view = CaseView(
        cid, "people", "town", "neighbour", "medium", "assigned", "people-town", None, "grid", "g"
    )
    await svc.people.on_transfer(view, "litigation")
    assert svc.people.calls[-1] == ("transfer", cid, "litigation")
