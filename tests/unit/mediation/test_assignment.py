"""case.triaged in: organisation by coverage, on-duty mediator with fewest open cases, queues,
co-channel copies, retriage and duplicates."""

from __future__ import annotations

from datetime import timedelta

from shared.bus import OutgoingMessage
from shared.contracts import REGISTRY, CaseTriaged
from shared.events import new_id
from tests.unit.mediation.conftest import NIGHT, Svc, dump


async def test_new_case_goes_to_covering_org_and_on_duty_mediator(svc: Svc) -> None:
    cid = await svc.triaged(grid_code="522731002005", tier="town")
    case = await svc.case(cid)
    assert (case["status"], case["organisation_id"], case["mediator_id"]) == (
        "assigned",
        "people-town",
        "med-people-town-day",
    )
    assert case["sign_for_due"] is not None and case["mediation_due"] is not None
    trail = svc.trail(cid)
    assert len(trail) == 1
    t = trail[0]
    assert (t["action"], t["from_status"], t["to_status"], t["actor"]) == (
        "assign",
        "triaged",
        "assigned",
        "system:mediation",
    )
    for key in (
        "source",
        "source_ref",
        "dispute_type",
        "severity",
        "channel",
        "tier",
        "organisation_id",
        "mediator_id",
        "sign_for_due",
        "mediation_due",
    ):
        assert t["details"][key] is not None, key
    assert "张三丰" not in dump(t) and "13812345678" not in dump(t)


async def test_fewest_open_cases_wins(svc: Svc) -> None:
    admin = svc.token("admin")
    r = await svc.client.post(
        "/v1/admin/mediators",
        headers=admin,
        json={"id": "med-people-town-day2", "name": "新调解员", "organisation_id": "people-town"},
    )
    assert r.status_code == 201, r.text
    first = await svc.triaged()  # tie at zero: by id, "…-day" before "…-day2"
    second = await svc.triaged()
    third = await svc.triaged()
    got = [(await svc.case(c))["mediator_id"] for c in (first, second, third)]
    assert got == ["med-people-town-day", "med-people-town-day2", "med-people-town-day"]


async def test_night_goes_to_on_call_mediator(svc: Svc) -> None:
    svc.clock.set(NIGHT)
    cid = await svc.triaged()
    assert (await svc.case(cid))["mediator_id"] == "med-people-town-night"


async def test_nobody_on_duty_queues_at_the_organisation(svc: Svc) -> None:
    svc.clock.set(NIGHT)
    cid = await svc.triaged(tier="grid")  # grid organisations have no night on-call
    case = await svc.case(cid)
    assert (case["status"], case["organisation_id"], case["mediator_id"]) == (
        "assigned",
        "people-grid",
        None,
    )
    assert "待办队列" in svc.trail(cid)[0]["reason"]
    assert svc.trail(cid)[0]["details"]["queued"] is True
    # any mediator of that organisation may take it from the queue
    body = await svc.act(cid, "accept", "med-people-grid-day")
    assert body["mediator_id"] == "med-people-grid-day"


async def test_uncovered_grid_falls_back_to_channel_and_tier(svc: Svc) -> None:
    cid = await svc.triaged(grid_code="110105", channel="medical", dispute_type="medical")
    case = await svc.case(cid)
    assert case["organisation_id"] == "medical-town"
    assert "无机构覆盖" in svc.trail(cid)[0]["reason"]


async def test_co_channels_get_a_read_only_copy(svc: Svc) -> None:
    cid = await svc.triaged(
        channel="police",
        co_channels=["labour"],
        severity="critical",
        tier="county",
        dispute_type="labour",
    )
    case = await svc.case(cid)
    assert case["organisation_id"] == "police-county"
    assert case["reader_organisations"] == ["labour-county"]
    reader = "med-labour-county-day"
    r = await svc.client.get(f"/v1/mediation/cases/{cid}", headers=svc.token(reader))
    assert r.status_code == 200
    assert r.json()["read_only"] is True and r.json()["personal_data"] == "masked"
    listed = await svc.client.get("/v1/mediation/cases", headers=svc.token(reader))
    assert cid in [c["case_id"] for c in listed.json()["items"]]
    r = await svc.client.post(f"/v1/cases/{cid}/accept", headers=svc.token(reader))
    assert r.status_code == 403


async def test_retriage_of_accepted_case_updates_severity_tier_and_deadlines(svc: Svc) -> None:
    cid = await svc.triaged()
    await svc.act(cid, "accept", "med-people-town-day")
    later = svc.clock.now()
    await svc.triaged(cid, severity="high", attempt=2, mediation_due=later.replace(year=2027))
    case = await svc.case(cid)
    assert (case["status"], case["severity"], case["organisation_id"]) == (
        "accepted",
        "high",
        "people-town",
    )
    assert case["mediation_due"].startswith("2027")
    last = svc.trail(cid)[-1]
    assert (last["action"], last["from_status"], last["to_status"]) == (
        "retriage",
        "accepted",
        "accepted",
    )


async def test_retriage_of_unaccepted_case_moves_it(svc: Svc) -> None:
    cid = await svc.triaged(tier="grid")
    await svc.triaged(
        cid, severity="critical", channel="police", co_channels=["people"], tier="county", attempt=2
    )
    case = await svc.case(cid)
    assert (case["status"], case["channel"], case["organisation_id"]) == (
        "assigned",
        "police",
        "police-county",
    )
    assert svc.trail(cid)[-1]["action"] == "reassign"


async def test_stale_and_duplicate_decisions_are_ignored(svc: Svc) -> None:
    cid = await svc.triaged(attempt=2)
    await svc.triaged(cid, attempt=1, channel="court")
    assert (await svc.case(cid))["channel"] == "people"
    env = svc.events(svc.topics.triaged, cid)[0]
    from shared.bus import OutgoingMessage

    await svc.bus.publish([OutgoingMessage(svc.topics.triaged, cid, env.to_bytes())])
    await svc.flush()
    assert len(svc.trail(cid)) == 1


async def test_no_organisation_leaves_it_triaged_for_a_coordinator(svc: Svc) -> None:
    cid = await svc.triaged(channel="unknown-channel")
    case = await svc.case(cid)
    assert (case["status"], case["organisation_id"]) == ("triaged", None)
    t = svc.trail(cid)[0]
    assert (t["action"], t["to_status"]) == ("unassigned", "triaged")
    body = await svc.act(
        cid, "assign", "coordinator-town", {"organisation_id": "people-town", "reason": "人工指派"}
    )
    assert (body["status"], body["channel"], body["mediator_id"]) == (
        "assigned",
        "people",
        "med-people-town-day",
    )


async def test_a_batch_of_routed_cases_counts_its_own_assignments(svc: Svc) -> None:
    """Cases of one consumer batch: each assignment sees the ones before it in the batch."""
    r = await svc.client.post(
        "/v1/admin/mediators",
        headers=svc.token("admin"),
        json={"id": "med-people-town-day2", "name": "新调解员", "organisation_id": "people-town"},
    )
    assert r.status_code == 201, r.text
    before = await svc.triaged()  # stored before the batch: "…-day" has one open case
    assert (await svc.case(before))["mediator_id"] == "med-people-town-day"
    ids = [new_id() for _ in range(5)]
    now = svc.clock.now()
    messages = []
    for cid in ids:
        ev = CaseTriaged(
            case_id=cid,
            source="grid",
            source_ref=f"g-{cid[:8]}",
            dispute_type="neighbour",
            severity="medium",
            channel="people",
            co_channels=[],
            tier="town",
            rule_id="R7",
            rules_version="test",
            sign_for_due=now + timedelta(hours=4),
            mediation_due=now + timedelta(days=30),
            attempt=1,
            grid_code="522731001001",
            text="楼上漏水",
            parties=[],
        )
        env = REGISTRY.event(ev, event_type="case.triaged", producer="test", case_id=cid)
        messages.append(OutgoingMessage(svc.topics.triaged, cid, env.to_bytes()))
    await svc.bus.publish(messages)  # queued together: one partition batch, one transaction
    await svc.bus.drain()
    await svc.flush()
    got = [(await svc.case(c))["mediator_id"] for c in ids]
    assert got == [
        "med-people-town-day2",  # 0 against 1
        "med-people-town-day",  # 1 : 1, by id
        "med-people-town-day2",
        "med-people-town-day",
        "med-people-town-day2",
    ]
    reasons = [svc.trail(c)[0]["reason"] for c in ids]
    assert [r.split("；")[-1] for r in reasons] == [
        "值班调解员在办0件，最少",
        "值班调解员在办1件，最少",
        "值班调解员在办1件，最少",
        "值班调解员在办2件，最少",
        "值班调解员在办2件，最少",
    ]


async def test_the_directory_cache_follows_admin_writes_at_once_and_others_within_its_ttl(
    svc: Svc,
) -> None:
    from services.mediation.assignment import Directory
    from services.mediation.repository import Organisation

    now = [0.0]
    directory = Directory(ttl_s=5.0, clock=lambda: now[0])

    async def org_ids() -> list[str]:
        async with svc.ctx.delivery.transaction() as tx:
            return [o.id for o in await directory.organisations(tx)]

    first = await org_ids()
    assert "people-town" in first and "written-elsewhere" not in first
    async with svc.ctx.delivery.transaction() as tx:  # another instance's admin route, say
        tx.session.add(
            Organisation(
                id="written-elsewhere",
                name="另一实例新建的机构",
                channel="people",
                tier="town",
                grid_codes=["522731001"],
                created_at=svc.clock.now(),
            )
        )
    assert await org_ids() == first  # cached: not read again within the TTL
    now[0] = 5.0
    assert "written-elsewhere" in await org_ids()  # read again once it expired
    directory.invalidate()  # what this instance's admin routes call after their commit
    async with svc.ctx.delivery.transaction() as tx:
        mediators = await directory.mediators(tx, "people-town")
    assert "med-people-town-day" in [m.id for m in mediators]

    # this service's own admin write is seen by the next assignment, with no wait
    warm = await svc.triaged()  # the service's directory now holds the day mediator
    assert (await svc.case(warm))["mediator_id"] == "med-people-town-day"
    r = await svc.client.patch(
        "/v1/admin/mediators/med-people-town-day",
        headers=svc.token("admin"),
        json={"active": False},
    )
    assert r.status_code == 200, r.text
    cid = await svc.triaged()
    assert (await svc.case(cid))["mediator_id"] != "med-people-town-day"
