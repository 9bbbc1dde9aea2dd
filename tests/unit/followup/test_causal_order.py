"""The ledger applies a case's trail in causal order whatever order the entries arrive in."""

from __future__ import annotations

import pytest
from sqlmodel import select

from services.followup.ledger import EntryContent, StoredEntry, entry_hash, verify_chain
from services.followup.repository import TABLES
from shared.events import new_id
from tests.causal import LIFE, T0, case_life, causal_position_ok, shuffled
from tests.unit.followup.conftest import TOPICS, Ledger


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
async def test_shuffled_trail_is_chained_in_causal_order(ledger: Ledger, seed: int) -> None:
    case_id = new_id()
    life = case_life(case_id)
    for env in shuffled(life, seed):
        await ledger.publish(TOPICS.trail, env)
    case = (await ledger.get(f"/v1/cases/{case_id}")).json()
    assert case["status"] == "closed"
    assert case["dispute_type"] == "neighbour" and case["channel"] == "people"
    trail = (await ledger.get(f"/v1/cases/{case_id}/trail")).json()["entries"]
    assert len(trail) == len(LIFE)
    assert causal_position_ok([e["event_id"] for e in trail], life)
    verify = (await ledger.get(f"/v1/cases/{case_id}/trail/verify")).json()
    assert verify["valid"] is True and verify["entries"] == len(LIFE)
    async with ledger.app.state.runtime.sessions() as s:
        assert (await s.exec(select(TABLES.parked))).all() == []  # nothing left waiting


async def test_an_entry_waits_for_its_cause_and_status_never_goes_back(ledger: Ledger) -> None:
    case_id = new_id()
    life = case_life(case_id)
    receive, triage, merge, assign = life[:4]
    await ledger.publish(TOPICS.trail, receive)
    await ledger.publish(TOPICS.trail, assign)  # before its cause (triage): waits
    case = (await ledger.get(f"/v1/cases/{case_id}")).json()
    assert case["status"] == "received" and case["entries"] == 1
    await ledger.publish(TOPICS.trail, triage)  # the cause: both are chained now
    await ledger.publish(TOPICS.trail, merge)  # a merge written against `received`
    case = (await ledger.get(f"/v1/cases/{case_id}")).json()
    assert case["status"] == "assigned" and case["entries"] == 4
    trail = (await ledger.get(f"/v1/cases/{case_id}/trail")).json()["entries"]
    assert [e["action"] for e in trail] == ["receive", "triage", "assign", "merge"]


def test_verify_fails_when_an_entry_is_chained_before_its_cause() -> None:
    def content(seq: int, follows: tuple[str, ...]) -> EntryContent:
        return EntryContent(
            case_id="c",
            seq=seq,
            at=T0,
            actor="system:t",
            actor_role="system",
            action="a",
            from_status=None,
            to_status="received",
            reason="",
            details={},
            follows=follows,
        )

    # entry "b" follows "a", but is chained first: every hash is right, the order is not
    first = content(1, ("a",))
    h1 = entry_hash("0" * 64, first)
    second = content(2, ())
    h2 = entry_hash(h1, second)
    chain = [
        StoredEntry(first, "0" * 64, h1, event_id="b"),
        StoredEntry(second, h1, h2, event_id="a"),
    ]
    check = verify_chain(chain)
    assert check.valid is False and check.broken_at == 1
    assert "follows" in (check.reason or "")
