"""Every role against every follow-up and ledger endpoint (table-driven).

Case "a" is a people-channel, grid-tier case of organisation org-people-1 in grid 522731001,
in follow-up. Case "x" is a labour case of town tier in grid 522799001.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.unit.followup.conftest import T0, Ledger

PRINCIPALS: dict[str, tuple[str, dict[str, Any]] | None] = {
    "admin": ("admin", {}),
    "viewer": ("viewer", {}),
    "coordinator_here": ("coordinator", {"tier": "grid", "grid_codes": ("522731",)}),
    "coordinator_whole_tier": ("coordinator", {"tier": "grid"}),
    "coordinator_tier_above": ("coordinator", {"tier": "county", "grid_codes": ("522731",)}),
    "coordinator_tier_below": ("coordinator", {"tier": "grid", "grid_codes": ("522799",)}),
    "coordinator_other_area": ("coordinator", {"tier": "grid", "grid_codes": ("522732",)}),
    "mediator_assigned": (
        "mediator",
        {"subject": "med-1", "channel": "people", "organisation": "org-people-1"},
    ),
    "mediator_colleague": ("mediator", {"channel": "people", "organisation": "org-people-1"}),
    "mediator_other_org": ("mediator", {"channel": "people", "organisation": "org-people-2"}),
    "mediator_other_channel": ("mediator", {"channel": "labour", "organisation": "org-lab-1"}),
    "mediator_no_channel": ("mediator", {}),
    "anonymous": None,
}

# who: (read case a, see it in lists and stats, record a visit on it)
SEES, HIDDEN = "sees", "hidden"
EXPECTED: dict[str, tuple[str, int]] = {
    "admin": (SEES, 201),
    "viewer": (SEES, 403),
    "coordinator_here": (SEES, 201),
    "coordinator_whole_tier": (SEES, 201),
    "coordinator_tier_above": (SEES, 201),
    "coordinator_tier_below": (HIDDEN, 404),
    "coordinator_other_area": (HIDDEN, 404),
    "mediator_assigned": (SEES, 201),
    "mediator_colleague": (SEES, 404),  # reads a masked copy; records no visit on it
    "mediator_other_org": (HIDDEN, 404),
    "mediator_other_channel": (HIDDEN, 404),
    "mediator_no_channel": (HIDDEN, 404),
    "anonymous": ("401", 401),
}


async def setup_cases(ledger: Ledger) -> None:
    await ledger.life(
        "a", "agreed", details={"organisation_id": "org-people-1", "mediator_id": "med-1"}
    )
    await ledger.agree("a", T0 + timedelta(hours=5))
    await ledger.life(
        "x",
        "agreed",
        details={
            "channel": "labour",
            "tier": "town",
            "dispute_type": "labour",
            "grid_code": "522799001",
            "organisation_id": "org-lab-1",
        },
    )
    await ledger.agree(
        "x", T0 + timedelta(hours=5), channel="labour", tier="town", organisation_id="org-lab-1"
    )


@pytest.mark.parametrize("who", list(PRINCIPALS))
async def test_every_role_against_every_endpoint(ledger: Ledger, who: str) -> None:
    await setup_cases(ledger)
    principal = PRINCIPALS[who]
    headers = ledger.token(principal[0], **principal[1]) if principal else {}
    expect, post_status = EXPECTED[who]

    async def get(path: str, **params: Any) -> Any:
        return await ledger.client.get(path, headers=headers, params=params)

    single = ["/v1/cases/a", "/v1/cases/a/trail", "/v1/cases/a/trail/verify", "/v1/cases/a/visits"]
    lists = {"/v1/cases": "items", "/v1/visits/due": "items"}
    if expect == "401":
        for path in [*single, *lists, "/v1/stats"]:
            assert (await get(path)).status_code == 401, path
    else:
        for path in single:
            r = await get(path)
            assert r.status_code == (200 if expect == SEES else 404), (who, path, r.text)
            if expect == HIDDEN:
                assert r.json() == {
                    "detail": "not found",
                    "errors": [{"field": "case_id", "reason": "no such case"}],
                }
        for path, key in lists.items():
            r = await get(path, by="2027-01-31T00:00:00Z") if "due" in path else await get(path)
            assert r.status_code == 200, (who, path)
            listed = {item["case_id"] for item in r.json()[key]}
            assert ("a" in listed) == (expect == SEES), (who, path, listed)
        stats = (await get("/v1/stats")).json()
        assert (stats["by_channel"].get("people", 0) == 1) == (expect == SEES), who
    r = await ledger.client.post(
        "/v1/cases/a/visits",
        headers=headers,
        json={"method": "phone", "honoured": True, "satisfaction": 4},
    )
    assert r.status_code == post_status, (who, r.text)


async def test_a_mediator_never_sees_another_channels_case_anywhere(ledger: Ledger) -> None:
    await setup_cases(ledger)
    labour = {"channel": "labour", "organisation": "org-lab-1"}
    listed = (await ledger.get("/v1/cases", role="mediator", who=labour)).json()["items"]
    assert [c["case_id"] for c in listed] == ["x"]
    stats = (await ledger.get("/v1/stats", role="mediator", who=labour)).json()
    assert stats["total"] == 1 and set(stats["by_channel"]) == {"labour"}
    for channel in ("people", "court", "police", "medical"):
        filtered = await ledger.get(
            "/v1/cases", role="mediator", who=labour, params={"channel": channel}
        )
        assert filtered.json()["items"] == []


async def test_an_expired_or_foreign_token_is_401(ledger: Ledger) -> None:
    from shared.auth import StaffPrincipal, issue_token, new_signing_keys

    p = StaffPrincipal(subject="x", role="admin")
    s = ledger.settings
    expired = issue_token(s.jwt_private_key, s.jwt_audience, p, ttl=timedelta(seconds=-1))
    foreign = issue_token(s.jwt_private_key, "another-system", p)
    forged = issue_token(new_signing_keys()[0], s.jwt_audience, p)  # another issuer's key
    for token in (expired, foreign, forged):
        r = await ledger.client.get("/v1/cases", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401


async def test_visit_routes_and_the_ledger_agree_on_who_sees_a_case(ledger: Ledger) -> None:
    # the agreement names no organisation; the ledger heard it from the assignment
    await ledger.life("a", "agreed", details={"organisation_id": "org-people-1"})
    await ledger.agree("a", T0 + timedelta(hours=5), organisation_id=None)
    own = {"channel": "people", "organisation": "org-people-1"}
    other = {"channel": "people", "organisation": "org-people-2"}
    due = {"by": "2027-01-31T00:00:00Z"}
    for who, visible in ((own, True), (other, False)):
        case = await ledger.get("/v1/cases/a", role="mediator", who=who)
        visits = await ledger.get("/v1/cases/a/visits", role="mediator", who=who)
        listed = await ledger.get("/v1/visits/due", role="mediator", who=who, params=due)
        assert case.status_code == visits.status_code == (200 if visible else 404)
        assert bool(listed.json()["items"]) is visible
    assert (await ledger.visit("a", role="mediator", who=other)).status_code == 404
    # a colleague in the organisation reads the case but records no visit on it
    assert (await ledger.visit("a", role="mediator", who=own)).status_code == 404
    assigned = {**own, "subject": "med-1"}
    assert (await ledger.visit("a", role="mediator", who=assigned)).status_code == 201
