"""Pure rules: the state machine table, tiers, duty shifts, organisation and mediator choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.mediation.domain import (
    TRANSITIONS,
    Deadlines,
    DutyHours,
    MediatorFacts,
    OrgFacts,
    TransitionRefused,
    allowed_actions,
    next_status,
    next_tier,
    on_duty,
    overdue_kinds,
    pick_coordination,
    pick_mediator,
    pick_organisation,
)
from shared.clock import ManualClock
from shared.contracts import CaseStatus

ACTIONS = sorted({a for a, _ in TRANSITIONS})
EXPECTED = {
    ("assign", "triaged"): "assigned",
    ("assign", "returned"): "assigned",
    ("assign", "escalated"): "assigned",
    ("reassign", "assigned"): "assigned",
    ("accept", "assigned"): "accepted",
    ("return", "assigned"): "returned",
    ("return", "accepted"): "returned",
    ("note", "accepted"): "mediating",
    ("note", "mediating"): "mediating",
    ("agree", "mediating"): "agreed",
    ("fail", "mediating"): "failed",
    ("escalate", "failed"): "escalated",
    ("transfer", "failed"): "transferred",
    ("reopen", "agreed"): "mediating",
    ("reopen", "follow_up"): "mediating",
    ("reopen", "reopened"): "mediating",
}
DAY = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 Shanghai
NIGHT = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # 22:00 Shanghai
HOURS = DutyHours()


@pytest.mark.parametrize("status", [s.value for s in CaseStatus])
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_in_every_status(action: str, status: str) -> None:
    expected = EXPECTED.get((action, status))
    if expected is None:
        with pytest.raises(TransitionRefused) as err:
            next_status(action, status)
        assert status in err.value.reason
    else:
        assert next_status(action, status) == expected


def test_allowed_actions_follow_the_table() -> None:
    assert allowed_actions("assigned") == ["accept", "reassign", "return"]
    assert allowed_actions("closed") == []


def test_tiers_go_up_and_stop_at_the_county() -> None:
    assert next_tier("grid") == "town"
    assert next_tier("town") == "county"
    with pytest.raises(TransitionRefused, match="county"):
        next_tier("county")


@pytest.mark.parametrize(
    ("day", "night", "when", "expected"),
    [
        (True, False, DAY, True),
        (True, False, NIGHT, False),
        (False, True, NIGHT, True),
        (False, True, DAY, False),
        (True, True, NIGHT, True),
        # 07:59 and 18:00 Shanghai are outside the day shift
        (True, False, datetime(2026, 11, 19, 23, 59, tzinfo=UTC), False),
        (True, False, datetime(2026, 11, 20, 10, 0, tzinfo=UTC), False),
        (False, True, datetime(2026, 11, 20, 10, 0, tzinfo=UTC), True),
    ],
)
def test_duty_shifts_in_shanghai_time(
    day: bool, night: bool, when: datetime, expected: bool
) -> None:
    assert on_duty(MediatorFacts("m", "o", day, night), when, HOURS) is expected


def test_inactive_mediator_is_never_on_duty() -> None:
    assert not on_duty(MediatorFacts("m", "o", True, True, active=False), DAY, HOURS)


ORGS = [
    OrgFacts("people-town-a", "mediation", "people", "town", ("522731001",)),
    OrgFacts("people-town-b", "mediation", "people", "town", ("522731002",)),
    OrgFacts("people-town-a1", "mediation", "people", "town", ("522731001001",)),
    OrgFacts("people-county", "mediation", "people", "county", ("522731",)),
    OrgFacts("labour-county", "mediation", "labour", "county", ("522731",)),
    OrgFacts("coord-county", "coordination", None, "county", ("522731",)),
    OrgFacts("coord-town", "coordination", None, "town", ("522731001",)),
]


@pytest.mark.parametrize(
    ("channel", "tier", "grid", "expected"),
    [
        ("people", "town", "522731001001", "people-town-a1"),  # longest prefix wins
        ("people", "town", "522731001002", "people-town-a"),
        ("people", "town", "522731002009", "people-town-b"),
        ("people", "town", "999", "people-town-a"),  # nobody covers: any of channel+tier
        ("people", "town", None, "people-town-a"),
        ("labour", "town", "522731001001", "labour-county"),  # no town org: the county's
        ("court", "town", "522731001001", None),
    ],
)
def test_pick_organisation(channel: str, tier: str, grid: str | None, expected: str | None) -> None:
    org, why = pick_organisation(ORGS, channel, tier, grid)
    assert (org.id if org else None) == expected
    assert why


def test_pick_coordination_centre() -> None:
    assert pick_coordination(ORGS, "county", "522731002001").id == "coord-county"  # type: ignore[union-attr]
    assert pick_coordination(ORGS, "grid", None) is None


def test_pick_mediator_on_duty_with_fewest_open_cases() -> None:
    ms = [
        MediatorFacts("a", "o", True, False),
        MediatorFacts("b", "o", True, False),
        MediatorFacts("c", "o", False, True),
        MediatorFacts("d", "other", True, False),
    ]
    assert pick_mediator(ms, "o", {"a": 3, "b": 1}, DAY, HOURS).id == "b"  # type: ignore[union-attr]
    assert pick_mediator(ms, "o", {"a": 1, "b": 1}, DAY, HOURS).id == "a"  # type: ignore[union-attr]
    assert pick_mediator(ms, "o", {"c": 9}, NIGHT, HOURS).id == "c"  # type: ignore[union-attr]
    assert pick_mediator(ms[:2], "o", {}, NIGHT, HOURS) is None


def test_overdue_kinds() -> None:
    due1, due2 = DAY + timedelta(hours=1), DAY + timedelta(days=15)
    assert overdue_kinds(Deadlines("assigned", due1, due2), DAY) == []
    assert overdue_kinds(Deadlines("assigned", due1, due2), DAY + timedelta(hours=2)) == [
        "sign_for_overdue"
    ]
    assert overdue_kinds(Deadlines("accepted", due1, due2), DAY + timedelta(hours=2)) == []
    assert overdue_kinds(Deadlines("assigned", due1, due2), DAY + timedelta(days=16)) == [
        "sign_for_overdue",
        "mediation_overdue",
    ]
    assert overdue_kinds(Deadlines("mediating", due1, due2), DAY + timedelta(days=16)) == [
        "mediation_overdue"
    ]
    assert overdue_kinds(Deadlines("agreed", due1, due2), DAY + timedelta(days=16)) == []
    naive = due1.replace(tzinfo=None)  # SQLite hands back naive datetimes
    assert overdue_kinds(Deadlines("assigned", naive, None), DAY + timedelta(hours=2)) == [
        "sign_for_overdue"
    ]


def test_manual_clock_moves_only_when_told() -> None:
    c = ManualClock(DAY)
    assert c.now() == DAY
    assert c.advance(timedelta(hours=1)) == DAY + timedelta(hours=1)
    c.set(NIGHT)
    assert c.now() == NIGHT
