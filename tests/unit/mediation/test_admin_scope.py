"""Coordinators manage organisations and staff only within their own tier and area (issue 5 §9).

Demo county 522731: the town tier covers 522731001 and 522731002, the grid tier 522731001001 and
522731001002; admins may do anything. Every refusal is a 403 with a reason and changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.mediation.access import management_refusal
from shared.auth import StaffPrincipal
from tests.unit.mediation.conftest import Svc

TOWN = StaffPrincipal("c", "coordinator", tier="town", grid_codes=("522731001", "522731002"))


@pytest.mark.parametrize(
    ("who", "tier", "codes", "allowed"),
    [
        (TOWN, "town", ["522731002001"], True),
        (TOWN, "town", ["522731001", "522731002"], True),
        (TOWN, "county", ["522731001"], False),
        (TOWN, "grid", ["522731001001"], False),
        (TOWN, None, ["522731001"], False),
        (TOWN, "town", ["522731003001"], False),
        (TOWN, "town", ["522731001001", "110105001"], False),
        (TOWN, "town", [], False),  # no grid codes = the whole county
        (StaffPrincipal("c", "coordinator", tier="town"), "town", [], True),  # no prefixes
        (StaffPrincipal("a", "admin"), "county", [], True),
        (StaffPrincipal("m", "mediator", tier="town", grid_codes=("5227",)), "town", [], False),
        (StaffPrincipal("v", "viewer", tier="town", grid_codes=("5227",)), "town", [], False),
    ],
)
def test_management_scope(
    who: StaffPrincipal, tier: str | None, codes: list[str], allowed: bool
) -> None:
    reason = management_refusal(who, tier, codes)
    assert (reason is None) is allowed
    assert reason is None or reason.strip()


def org(oid: str, tier: str, codes: list[str], **kw: Any) -> dict[str, Any]:
    return (
        {"id": oid, "name": f"{oid}委员会", "channel": "people", "tier": tier}
        | {"grid_codes": codes}
        | kw
    )


async def orgs(svc: Svc) -> dict[str, dict[str, Any]]:
    r = await svc.client.get("/v1/admin/organisations", headers=svc.token("admin"))
    return {o["id"]: o for o in r.json()["items"]}


async def staff(svc: Svc) -> dict[str, dict[str, Any]]:
    r = await svc.client.get("/v1/admin/mediators", headers=svc.token("admin"))
    return {m["id"]: m for m in r.json()["items"]}


async def test_coordinator_manages_organisations_of_own_tier_and_area_only(svc: Svc) -> None:
    h = svc.token("coordinator-town")
    before = await orgs(svc)
    r = await svc.client.post(
        "/v1/admin/organisations", headers=h, json=org("people-town-hb", "town", ["522731002001"])
    )
    assert r.status_code == 201, r.text
    refused = {
        "another tier": org("people-county-2", "county", ["522731"]),
        "a lower tier": org("people-grid-2", "grid", ["522731001001"]),
        "outside the area": org("people-town-x", "town", ["522731003001"]),
        "partly outside": org("people-town-y", "town", ["522731001001", "110105001"]),
        "whole county": org("people-town-z", "town", []),
        # taking over another tier's organisation by its id, even with in-scope fields
        "takeover by id": org("people-county", "town", ["522731001"], name="改名"),
    }
    for case, body in refused.items():
        r = await svc.client.post("/v1/admin/organisations", headers=h, json=body)
        assert r.status_code == 403, (case, r.text)
        assert r.json()["detail"], case
    after = await orgs(svc)
    assert after.pop("people-town-hb")["grid_codes"] == ["522731002001"]
    assert after == before  # nothing refused was written
    r = await svc.client.post(
        "/v1/admin/organisations", headers=h, json=org("people-county", "county", ["522731"])
    )
    assert r.status_code == 403 and "tier" in r.json()["detail"]
    r = await svc.client.post(
        "/v1/admin/organisations", headers=h, json=org("people-town-x", "town", ["522731003001"])
    )
    assert r.status_code == 403 and "area" in r.json()["detail"]


async def test_grid_coordinator_is_held_to_their_grid_prefixes(svc: Svc) -> None:
    h = svc.token("coordinator-grid")
    ok = await svc.client.post(
        "/v1/admin/organisations", headers=h, json=org("people-grid-e", "grid", ["522731001001"])
    )
    no = await svc.client.post(
        "/v1/admin/organisations", headers=h, json=org("people-grid-w", "grid", ["522731002001"])
    )
    assert (ok.status_code, no.status_code) == (201, 403)
    assert "people-grid-w" not in await orgs(svc)


async def test_coordinator_manages_staff_of_own_tier_and_area_only(svc: Svc) -> None:
    h = svc.token("coordinator-town")
    before = await staff(svc)
    r = await svc.client.post(
        "/v1/admin/mediators",
        headers=h,
        json={"id": "med-new", "name": "新人", "organisation_id": "people-town"},
    )
    assert r.status_code == 201 and r.json()["tier"] == "town"
    refused = {
        "into another tier": (
            "POST",
            "",
            {"id": "m2", "name": "x", "organisation_id": "people-county"},
        ),
        "viewer without organisation": ("POST", "", {"id": "v2", "name": "x", "role": "viewer"}),
        "overwrite another tier's mediator": (
            "POST",
            "",
            {"id": "med-people-county-day", "name": "x", "organisation_id": "people-town"},
        ),
        "patch another tier's mediator": ("PATCH", "/med-people-county-day", {"active": False}),
        "move own mediator to another tier": (
            "PATCH",
            "/med-people-town-day",
            {"organisation_id": "people-county"},
        ),
        "patch the county viewer": ("PATCH", "/viewer-county", {"active": False}),
    }
    for case, (method, suffix, body) in refused.items():
        r = await svc.client.request(method, f"/v1/admin/mediators{suffix}", headers=h, json=body)
        assert r.status_code == 403, (case, r.text)
        assert r.json()["detail"], case
    after = await staff(svc)
    assert after.pop("med-new")["organisation_id"] == "people-town"
    assert after == before  # nothing refused was written
    r = await svc.client.patch(
        "/v1/admin/mediators/med-people-town-day", headers=h, json={"night_on_call": True}
    )
    assert r.status_code == 200 and r.json()["night_on_call"] is True


async def test_admin_manages_every_tier_and_area(svc: Svc) -> None:
    h = svc.token("admin")
    for body in (
        org("people-county", "county", ["522731"], name="县人民调解委员会"),
        org("people-town-x", "town", ["522731003001"]),
        org("people-town-z", "town", []),
    ):
        r = await svc.client.post("/v1/admin/organisations", headers=h, json=body)
        assert r.status_code == 201, r.text
    r = await svc.client.post(
        "/v1/admin/mediators", headers=h, json={"id": "v2", "name": "x", "role": "viewer"}
    )
    assert r.status_code == 201
    r = await svc.client.patch(
        "/v1/admin/mediators/med-people-county-day",
        headers=h,
        json={"organisation_id": "people-town-x"},
    )
    assert r.status_code == 200 and r.json()["organisation_id"] == "people-town-x"
    assert (await orgs(svc))["people-county"]["name"] == "县人民调解委员会"
