"""The pure rules behind warnings and reports: areas, windows, deadlines, buckets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.followup.reporting.domain import bucket_start, buckets
from services.followup.warnings.domain import (
    Thresholds,
    area_levels,
    employers,
    escalation_facts,
    rising,
    rising_windows,
    soon_due,
    tier_above,
)

T = Thresholds()
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def test_area_levels_of_dashed_and_plain_digit_codes() -> None:
    assert area_levels("522731-103-007-01") == {
        "county": "522731",
        "town": "522731-103",
        "village": "522731-103-007",
        "grid": "522731-103-007-01",
    }
    assert area_levels("522731001001") == {
        "county": "522731",
        "town": "522731001",
        "village": "522731001001",
    }
    assert area_levels("522731001") == {"county": "522731", "town": "522731001"}
    assert area_levels(None) == {} and area_levels("") == {}


def test_rising_needs_both_the_minimum_and_the_factor() -> None:
    assert rising(5, 0, T).holds
    assert not rising(4, 0, T).holds
    assert rising(10, 40, T).holds  # mean 5 a week, doubled
    assert not rising(9, 40, T).holds
    recent_from, base_from, base_to = rising_windows(date(2026, 11, 20), T)
    assert (recent_from, base_from, base_to) == (
        date(2026, 11, 14),
        date(2026, 9, 19),
        date(2026, 11, 13),
    )


def test_soon_due_quarter_of_sign_for_window_and_three_days_of_mediation() -> None:
    start, sign, med = NOW, NOW + timedelta(hours=4), NOW + timedelta(days=15)
    assert soon_due("assigned", start, sign, med, NOW + timedelta(hours=2), T) == []
    [d] = soon_due("assigned", start, sign, med, NOW + timedelta(hours=3, minutes=1), T)
    assert d.deadline == "sign_for"
    assert soon_due("assigned", start, sign, med, NOW + timedelta(hours=5), T) == []  # missed
    assert soon_due("accepted", start, sign, med, NOW + timedelta(days=11), T) == []
    [m] = soon_due("mediating", start, sign, med, NOW + timedelta(days=12, hours=1), T)
    assert m.deadline == "mediation"
    assert soon_due("agreed", start, sign, med, NOW + timedelta(days=12, hours=1), T) == []


def test_escalation_reasons() -> None:
    base = {"severity": "low", "status": "mediating", "return_count": 0}
    assert escalation_facts(None, base, "receive") is None
    assert escalation_facts(base, {**base, "severity": "high"}, "retriage") == {
        "reason": "severity_rose",
        "from_severity": "low",
        "to_severity": "high",
        "by": "retriage",
    }
    assert escalation_facts(base, {**base, "severity": "low"}, "x") is None
    reopened = escalation_facts(base, {**base, "status": "reopened", "reopen_count": 1}, "reopen")
    assert reopened is not None and reopened["reason"] == "reopened"
    once = {**base, "return_count": 1}
    assert escalation_facts(base, once, "return") is None
    twice = escalation_facts(once, {**base, "return_count": 2}, "return")
    assert twice is not None and twice["reason"] == "returned_twice"


def test_employers_and_tiers() -> None:
    parties = [
        {"role": "applicant", "kind": "person", "display": "王*"},
        {"role": "respondent", "kind": "organisation", "display": "某建筑有限公司"},
        {"role": "applicant", "kind": "organisation", "display": "某劳务队"},
    ]
    assert employers(parties) == ["某建筑有限公司"]
    assert employers(parties[2:]) == ["某劳务队"]
    assert [tier_above(t) for t in ("grid", "town", "county", None)] == [
        "town",
        "county",
        "county",
        None,
    ]


def test_buckets() -> None:
    assert bucket_start(date(2026, 11, 20), "week") == date(2026, 11, 16)  # a Monday
    assert bucket_start(date(2026, 11, 20), "month") == date(2026, 11, 1)
    assert buckets(date(2026, 11, 30), date(2027, 1, 2), "month") == [
        date(2026, 11, 1),
        date(2026, 12, 1),
        date(2027, 1, 1),
    ]
    assert len(buckets(date(2026, 11, 1), date(2026, 11, 30), "day")) == 30
