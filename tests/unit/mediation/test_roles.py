"""Every role against every mediation endpoint (issue 5 §9).

"ok" means the caller got through authentication and authorisation: a 2xx, or a 409 when the
state machine refuses (the case moves as the row's actions run). Lists never show a foreign case.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.auth import StaffPrincipal, issue_token
from tests.unit.mediation.conftest import Svc

OK = "ok"
# endpoint → (method, path, body, which case: "A" agreed with a document, "B" freshly assigned)
ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None, str]] = {
    "read": ("GET", "/v1/mediation/cases/{id}", None, "A"),
    "document": ("GET", "/v1/cases/{id}/agreement/document", None, "A"),
    "supervisions": ("GET", "/v1/supervisions", None, "-"),
    "channels": ("GET", "/v1/mediation/channels", None, "-"),
    "accept": ("POST", "/v1/cases/{id}/accept", None, "B"),
    "notes": ("POST", "/v1/cases/{id}/notes", {"text": "进展"}, "B"),
    "agreement": ("POST", "/v1/cases/{id}/agreement", {"terms": "和解"}, "B"),
    "failure": ("POST", "/v1/cases/{id}/failure", {"reason": "不成"}, "B"),
    "escalate": ("POST", "/v1/cases/{id}/escalate", {"reason": "上交"}, "B"),
    "transfer": (
        "POST",
        "/v1/cases/{id}/transfer",
        {"target": "litigation", "reason": "诉讼"},
        "B",
    ),
    "assign": ("POST", "/v1/cases/{id}/assign", {"organisation_id": "people-town"}, "B"),
    "return": ("POST", "/v1/cases/{id}/return", {"reason": "非本渠道"}, "B"),
    "admin_orgs": ("GET", "/v1/admin/organisations", None, "-"),
    "admin_staff": (
        "POST",
        "/v1/admin/mediators",
        {"id": "m-new", "name": "新人", "organisation_id": "people-town"},
        "-",
    ),
    "admin_token": ("POST", "/v1/admin/mediators/med-people-town-day/token", None, "-"),
    "admin_scan": ("POST", "/v1/admin/supervision/scan", None, "-"),
}
READS = {"read": OK, "document": OK, "supervisions": OK, "channels": OK}
HIDDEN = {"read": 404, "document": 404, "supervisions": OK, "channels": OK}
ACTS = ("accept", "notes", "agreement", "failure", "escalate", "transfer", "assign", "return")
NO_ADMIN = {"admin_orgs": 403, "admin_staff": 403, "admin_token": 403, "admin_scan": 403}
MANAGER = {"admin_orgs": OK, "admin_staff": OK, "admin_token": 403, "admin_scan": 403}
# a coordinator outside people-town's tier or area may not add staff to it
OTHER_MANAGER = {**MANAGER, "admin_staff": 403}

# role → (who, listed?, expectations)
TABLE: dict[str, tuple[str, bool | int, dict[str, Any]]] = {
    "admin": (
        "admin",
        True,
        {
            **READS,
            **dict.fromkeys(ACTS, OK),
            "admin_orgs": OK,
            "admin_staff": OK,
            "admin_token": OK,
            "admin_scan": OK,
        },
    ),
    "mediator of the case": (
        "med-people-town-day",
        True,
        {**READS, **dict.fromkeys(ACTS, OK), "assign": 403, **NO_ADMIN},
    ),
    "colleague in the organisation": (
        "med-people-town-night",
        True,
        {**READS, **dict.fromkeys(ACTS, 403), **NO_ADMIN},
    ),
    "co-channel reader": (
        "med-police-town-day",
        True,
        {**READS, **dict.fromkeys(ACTS, 403), **NO_ADMIN},
    ),
    "mediator of another channel": (
        "med-labour-town-day",
        False,
        {**HIDDEN, **dict.fromkeys(ACTS, 404), **NO_ADMIN},
    ),
    "mediator of another tier": (
        "med-people-grid-day",
        False,
        {**HIDDEN, **dict.fromkeys(ACTS, 404), **NO_ADMIN},
    ),
    "coordinator of the tier": (
        "coordinator-town",
        True,
        {
            **READS,
            **dict.fromkeys(ACTS, OK),
            "accept": 403,
            "notes": 403,
            "agreement": 403,
            **MANAGER,
        },
    ),
    # DOMAIN.md §7: a coordinator oversees their tier and every tier below it
    "coordinator of the tier above": (
        "coordinator-county",
        True,
        {
            **READS,
            **dict.fromkeys(ACTS, OK),
            "accept": 403,
            "notes": 403,
            "agreement": 403,
            **OTHER_MANAGER,
        },
    ),
    "coordinator of the tier below": (
        "coordinator-grid-below",
        False,
        {**HIDDEN, **dict.fromkeys(ACTS, 404), **OTHER_MANAGER},
    ),
    "coordinator of another area": (
        "coordinator-elsewhere",
        False,
        {**HIDDEN, **dict.fromkeys(ACTS, 404), **OTHER_MANAGER},
    ),
    "viewer": ("viewer-county", True, {**READS, **dict.fromkeys(ACTS, 403), **NO_ADMIN}),
    "no token": ("anonymous", 401, dict.fromkeys(ENDPOINTS, 401)),
    "expired token": ("expired", 401, dict.fromkeys(ENDPOINTS, 401)),
    "token for another audience": ("foreign", 401, dict.fromkeys(ENDPOINTS, 401)),
}


def headers(svc: Svc, who: str) -> dict[str, str]:
    """Authorization for a row of the table."""
    if who == "anonymous":
        return {}
    if who == "expired":
        t = issue_token(
            svc.settings.jwt_private_key,
            svc.settings.jwt_audience,
            StaffPrincipal("x", "admin"),
            ttl=timedelta(seconds=-10),
        )
        return {"Authorization": f"Bearer {t}"}
    if who == "foreign":
        t = issue_token(
            svc.settings.jwt_private_key, "another-system", StaffPrincipal("x", "admin")
        )
        return {"Authorization": f"Bearer {t}"}
    if who == "coordinator-grid-below":
        return svc.principal_token(
            StaffPrincipal("c8", "coordinator", tier="grid", grid_codes=("522731",))
        )
    if who == "coordinator-elsewhere":
        return svc.principal_token(
            StaffPrincipal("c9", "coordinator", tier="town", grid_codes=("110105",))
        )
    return svc.token(who)


async def agreed_case(svc: Svc) -> str:
    """Case A: agreed, with a document; co-channel police."""
    cid = await svc.triaged(co_channels=["police"])
    me = "med-people-town-day"
    await svc.act(cid, "accept", me)
    await svc.act(cid, "notes", me, {"text": "调解"}, expect=201)
    await svc.act(cid, "agreement", me, {"terms": "和解", "amount_yuan": 100}, expect=201)
    return cid


@pytest.mark.parametrize("role", list(TABLE))
async def test_role_against_every_endpoint(svc: Svc, role: str) -> None:
    who, listed, expected = TABLE[role]
    case_a = await agreed_case(svc)
    case_b = await svc.triaged(co_channels=["police"])
    h = headers(svc, who)
    got: dict[str, Any] = {}
    for name, (method, path, body, which) in ENDPOINTS.items():
        url = path.format(id=case_a if which == "A" else case_b)
        r = await svc.client.request(method, url, headers=h, json=body)
        ok = r.status_code < 400 or r.status_code == 409
        got[name] = OK if ok else r.status_code
        await svc.flush()
    wrong = {k: (got[k], expected[k]) for k in ENDPOINTS if got[k] != expected[k]}
    assert not wrong, f"{role}: endpoint → (got, expected): {wrong}"

    r = await svc.client.get("/v1/mediation/cases", headers=h)
    if listed == 401:
        assert r.status_code == 401
        return
    assert r.status_code == 200
    ids = {c["case_id"] for c in r.json()["items"]}
    assert ({case_a, case_b} <= ids) if listed else not ({case_a, case_b} & ids), role
    for status in ("assigned", "agreed", "returned", None):
        q = f"?status={status}" if status else ""
        items = (await svc.client.get(f"/v1/mediation/cases{q}", headers=h)).json()["items"]
        if not listed:
            assert not ({case_a, case_b} & {c["case_id"] for c in items})


async def test_personal_data_is_clear_only_for_the_mediator_and_coordinators(svc: Svc) -> None:
    cid = await agreed_case(svc)
    seen = {}
    for who in (
        "admin",
        "med-people-town-day",
        "coordinator-town",
        "med-people-town-night",
        "med-police-town-day",
        "viewer-county",
    ):
        body = (await svc.client.get(f"/v1/mediation/cases/{cid}", headers=svc.token(who))).json()
        seen[who] = (body["personal_data"], body["contact"]["parties"][0]["phone"])
    assert seen == {
        "admin": ("clear", "13812345678"),
        "med-people-town-day": ("clear", "13812345678"),
        "coordinator-town": ("clear", "13812345678"),
        "med-people-town-night": ("masked", "138****5678"),
        "med-police-town-day": ("masked", "138****5678"),
        "viewer-county": ("masked", "138****5678"),
    }
