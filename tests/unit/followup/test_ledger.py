"""The ledger: every trail entry chained by hash, the case projected from its trail."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from services.followup.ledger import GENESIS_HASH, EntryContent, entry_hash
from tests.unit.followup.conftest import T0, TOPICS, Ledger, trail_event


async def test_a_whole_life_is_projected_from_its_trail(ledger: Ledger) -> None:
    await ledger.life(
        "c1", "agreed", details={"organisation_id": "org-people-1", "mediator_id": "med-1"}
    )
    ledger.clock.advance(timedelta(hours=1))
    await ledger.agree("c1", T0 + timedelta(hours=5))
    await ledger.visit("c1", honoured=True, satisfaction=4)
    await ledger.visit("c1", honoured=True, satisfaction=5)

    case = (await ledger.get("/v1/cases/c1")).json()
    assert case["status"] == "closed"
    assert (case["source"], case["source_ref"], case["dispute_type"], case["severity"]) == (
        "12345",
        "WO-1",
        "neighbour",
        "low",
    )
    assert (case["channel"], case["tier"], case["first_tier"]) == ("people", "grid", "grid")
    assert (case["organisation_id"], case["mediator_id"]) == ("org-people-1", "med-1")
    assert case["grid_code"] == "522731001"
    assert case["sign_for_due"] == "2026-11-21T00:00:00Z"
    assert case["mediation_due"] == "2026-12-20T00:00:00Z"
    assert case["received_at"] == case["created_at"] == "2026-11-20T00:00:00Z"
    assert case["agreed_at"] == "2026-11-20T05:00:00Z"
    assert case["closed_at"] == "2026-11-21T01:00:00Z"  # the clock when the visits were recorded
    assert case["satisfaction"] == 5 and case["overdue"] is False
    assert case["entries"] == 9

    trail = (await ledger.get("/v1/cases/c1/trail")).json()["entries"]
    assert [(e["seq"], e["action"], e["from_status"], e["to_status"]) for e in trail] == [
        (1, "receive", None, "received"),
        (2, "triage", "received", "triaged"),
        (3, "assign", "triaged", "assigned"),
        (4, "accept", "assigned", "accepted"),
        (5, "note", "accepted", "mediating"),
        (6, "agree", "mediating", "agreed"),
        (7, "follow_up", "agreed", "follow_up"),
        (8, "visit", "follow_up", "follow_up"),
        (9, "close", "follow_up", "closed"),
    ]
    assert trail[7]["details"]["satisfaction"] == 4 and trail[7]["actor"] == "user:admin-1"
    assert trail[0]["prev_hash"] == GENESIS_HASH
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(trail, trail[1:], strict=False))
    verify = (await ledger.get("/v1/cases/c1/trail/verify")).json()
    assert verify == {
        "case_id": "c1",
        "valid": True,
        "entries": len(trail),
        "broken_at": None,
        "reason": None,
    }


async def test_altering_one_stored_entry_is_detected_at_exactly_that_entry(ledger: Ledger) -> None:
    await ledger.life("c1", "mediating")
    assert (await ledger.get("/v1/cases/c1/trail/verify")).json()["valid"] is True
    engine = ledger.app.state.runtime.engine
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE ledger_entries SET reason = 'nothing happened' "
                "WHERE case_id = 'c1' AND seq = 3"
            )
        )
    check = (await ledger.get("/v1/cases/c1/trail/verify")).json()
    assert check == {
        "case_id": "c1",
        "valid": False,
        "entries": 5,
        "broken_at": 3,
        "reason": "entry content does not match its hash",
    }


async def test_a_rewritten_entry_with_a_fresh_hash_breaks_the_next_link(ledger: Ledger) -> None:
    await ledger.life("c1", "mediating")
    engine = ledger.app.state.runtime.engine
    async with engine.begin() as conn:  # forge entry 2 and recompute its own hash
        await conn.execute(
            text("UPDATE ledger_entries SET hash = :h WHERE case_id = 'c1' AND seq = 2"),
            {"h": "f" * 64},
        )
    check = (await ledger.get("/v1/cases/c1/trail/verify")).json()
    assert (check["valid"], check["broken_at"]) == (False, 2)


async def test_deleting_the_newest_entry_is_detected(ledger: Ledger) -> None:
    await ledger.life("c1", "mediating")
    engine = ledger.app.state.runtime.engine
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM ledger_entries WHERE case_id = 'c1' AND seq = 5"))
    check = (await ledger.get("/v1/cases/c1/trail/verify")).json()
    assert (check["valid"], check["entries"], check["broken_at"]) == (False, 4, 5)


async def test_deleting_an_entry_in_the_middle_is_detected_where_the_gap_is(ledger: Ledger) -> None:
    await ledger.life("c1", "mediating")
    engine = ledger.app.state.runtime.engine
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM ledger_entries WHERE case_id = 'c1' AND seq = 2"))
    check = (await ledger.get("/v1/cases/c1/trail/verify")).json()
    assert (check["valid"], check["broken_at"]) == (False, 2)


def test_the_hash_covers_every_field_and_the_previous_hash() -> None:
    base = EntryContent(
        case_id="c",
        seq=1,
        at=T0,
        actor="system:x",
        actor_role="system",
        action="receive",
        from_status=None,
        to_status="received",
        reason="",
        details={"a": 1, "b": [1, 2]},
    )
    h = entry_hash(GENESIS_HASH, base)
    assert len(h) == 64
    # key order and time zone spelling do not matter: the JSON is canonical
    same = EntryContent(
        **{
            **base.__dict__,
            "details": {"b": [1, 2], "a": 1},
            "at": T0.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")),
        }
    )
    assert entry_hash(GENESIS_HASH, same) == h
    for change in (
        {"seq": 2},
        {"actor": "user:x"},
        {"actor_role": "mediator"},
        {"action": "x"},
        {"from_status": "triaged"},
        {"to_status": "closed"},
        {"reason": "r"},
        {"details": {"a": 2, "b": [1, 2]}},
        {"at": T0 + timedelta(microseconds=1)},
        {"case_id": "d"},
    ):
        assert entry_hash(GENESIS_HASH, EntryContent(**{**base.__dict__, **change})) != h
    assert entry_hash("1" * 64, base) != h


async def test_a_redelivered_event_is_appended_once(ledger: Ledger) -> None:
    env = trail_event("c1", "received", details={"source": "110", "source_ref": "J1"})
    await ledger.publish(TOPICS.trail, env, env)
    await ledger.publish(TOPICS.trail, env)
    trail = (await ledger.get("/v1/cases/c1/trail")).json()["entries"]
    assert len(trail) == 1 and trail[0]["event_id"] == env.event_id


async def test_entries_without_details_and_out_of_the_usual_order_are_tolerated(
    ledger: Ledger,
) -> None:
    # the mediation entry arrives first and carries nothing; the ledger still keeps it
    await ledger.trail("c9", "assigned", "triaged", details={})
    await ledger.trail(
        "c9", "accepted", "assigned", details={"channel": "court"}, at=T0 + timedelta(hours=1)
    )
    case = (await ledger.get("/v1/cases/c9")).json()
    assert (case["status"], case["channel"], case["source"], case["tier"]) == (
        "accepted",
        "court",
        None,
        None,
    )
    assert case["created_at"] == "2026-11-20T00:00:00Z" and case["received_at"] is None


async def test_supervision_entries_set_the_overdue_flags_and_keep_the_status(
    ledger: Ledger,
) -> None:
    await ledger.life("c1", "assigned")
    await ledger.trail(
        "c1",
        "assigned",
        "assigned",
        action="supervise",
        details={"kind": "sign_for_overdue", "tier": "grid"},
    )
    case = (await ledger.get("/v1/cases/c1")).json()
    assert (
        case["status"],
        case["sign_for_overdue"],
        case["mediation_overdue"],
        case["overdue"],
    ) == ("assigned", True, False, True)
    await ledger.trail("c1", "accepted", "assigned", action="accept")
    await ledger.trail(
        "c1", "accepted", "accepted", action="supervise", details={"kind": "mediation_overdue"}
    )
    case = (await ledger.get("/v1/cases/c1")).json()
    assert (case["status"], case["mediation_overdue"]) == ("accepted", True)


async def test_returns_escalations_and_tiers_are_counted(ledger: Ledger) -> None:
    await ledger.life("c1", "assigned")
    await ledger.trail("c1", "returned", "assigned", action="return", reason="wrong channel")
    await ledger.trail(
        "c1", "triaged", "returned", action="reroute", details={"channel": "court", "tier": "town"}
    )
    await ledger.trail("c1", "assigned", "triaged", action="assign")
    await ledger.trail("c1", "accepted", "assigned")
    await ledger.trail("c1", "mediating", "accepted")
    await ledger.trail("c1", "failed", "mediating", action="fail")
    await ledger.trail("c1", "escalated", "failed", action="escalate", details={"tier": "county"})
    case = (await ledger.get("/v1/cases/c1")).json()
    assert (case["return_count"], case["escalation_count"]) == (1, 1)
    assert (case["channel"], case["first_tier"], case["tier"]) == ("court", "grid", "county")


async def test_an_escalation_moves_the_tier_to_the_one_it_names(ledger: Ledger) -> None:
    await ledger.life("c1", "mediating")
    await ledger.trail("c1", "failed", "mediating", action="fail")
    await ledger.trail(
        "c1",
        "escalated",
        "failed",
        action="escalate",
        details={"tier": "grid", "from_tier": "grid", "to_tier": "town"},
    )
    case = (await ledger.get("/v1/cases/c1")).json()
    assert (case["status"], case["first_tier"], case["tier"]) == ("escalated", "grid", "town")
    assert case["escalation_count"] == 1


async def test_the_ledger_keeps_no_personal_data(ledger: Ledger) -> None:
    await ledger.trail(
        "c1",
        "received",
        reason="报警人电话13812345678称被打",
        details={
            "source": "110",
            "text": "张三说李四打人",
            "phone": "13812345678",
            "parties": [
                {"role": "applicant", "kind": "person", "display": "张三丰"},
                {"role": "respondent", "kind": "organisation", "display": "南溪物业公司"},
            ],
        },
    )
    case = (await ledger.get("/v1/cases/c1")).json()
    assert case["parties"] == [
        {"role": "applicant", "kind": "person", "display": "张*丰"},
        {"role": "respondent", "kind": "organisation", "display": "南溪物业公司"},
    ]
    [entry] = (await ledger.get("/v1/cases/c1/trail")).json()["entries"]
    assert "13812345678" not in str(entry) and "张三" not in str(entry)
    assert entry["reason"] == "报警人电话138****5678称被打"
    assert (await ledger.get("/v1/cases/c1/trail/verify")).json()["valid"] is True
