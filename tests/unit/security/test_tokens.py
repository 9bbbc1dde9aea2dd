"""Staff tokens: EdDSA, short-lived, issuer and audience checked, revoked on deactivation or a move.

Revocation: mediation bumps the staff member's token version and publishes staff.changed; each
service keeps the newest status and refuses older tokens. An instance that did not consume the
event itself learns from the shared table when its cache entry expires (≤ 60 s; the clock is
injected, nothing sleeps).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from shared.auth import (
    AUDIENCES,
    DEV_JWT_PRIVATE_KEY,
    DEV_JWT_PUBLIC_KEY,
    AuthError,
    StaffPrincipal,
    issue_token,
    new_signing_keys,
    verify_token,
)
from shared.events import utcnow
from shared.staff_status import StaffStatusCache
from tests.unit.security.conftest import MEDIATOR_A, Running, run_followup, run_mediation

ADMIN = StaffPrincipal("root", "admin")


def check(token: str, audience: str = "fengqiao-intake") -> StaffPrincipal:
    return verify_token(DEV_JWT_PUBLIC_KEY, audience, token)


def test_a_token_is_eddsa_with_issuer_id_audiences_and_an_hour_at_most() -> None:
    token = issue_token(DEV_JWT_PRIVATE_KEY, AUDIENCES, ADMIN)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA"
    assert claims["iss"] == "fengqiao-mediation" and len(claims["jti"]) == 32
    assert claims["aud"] == list(AUDIENCES) and claims["exp"] - claims["iat"] <= 3600
    for audience in AUDIENCES:
        assert check(token, audience).role == "admin"


@pytest.mark.parametrize(
    "forge",
    [
        "a 100-year token",
        "another issuer",
        "no issuer",
        "no jti",
        "another service's audience",
        "another key",
        "HS256 with the public key as secret",
        "unsigned",
        "expired",
    ],
)
def test_forged_or_overlong_tokens_are_refused(forge: str) -> None:
    now = utcnow()
    claims: dict[str, Any] = {
        "sub": "x",
        "role": "admin",
        "aud": list(AUDIENCES),
        "iss": "fengqiao-mediation",
        "jti": "0" * 32,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=30)).timestamp()),
    }
    key: Any = DEV_JWT_PRIVATE_KEY
    alg = "EdDSA"
    if forge == "a 100-year token":
        claims["exp"] = int((now + timedelta(days=36500)).timestamp())
    elif forge == "another issuer":
        claims["iss"] = "intake"
    elif forge == "no issuer":
        del claims["iss"]
    elif forge == "no jti":
        del claims["jti"]
    elif forge == "another service's audience":
        claims["aud"] = ["fengqiao-followup"]
    elif forge == "another key":
        key = new_signing_keys()[0]
    elif forge == "HS256 with the public key as secret":
        key, alg = DEV_JWT_PUBLIC_KEY, "HS256"
    elif forge == "unsigned":
        key, alg = None, "none"
    elif forge == "expired":
        claims["exp"] = int((now - timedelta(seconds=1)).timestamp())
    if alg == "EdDSA":
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(key.encode(), password=None)
    try:
        token = jwt.encode(claims, key, algorithm=alg)
    except jwt.InvalidKeyError:  # pyjwt itself refuses to HMAC-sign with a PEM key
        return
    with pytest.raises(AuthError):
        check(token)


async def _mediation_and_followup(tmp_path: Path) -> tuple[Any, Any, Any, Any]:
    (tmp_path / "m").mkdir()
    (tmp_path / "f").mkdir()
    med_gen, fol_gen = run_mediation(tmp_path / "m"), run_followup(tmp_path / "f")
    return med_gen, await med_gen.__anext__(), fol_gen, await fol_gen.__anext__()


async def test_deactivation_revokes_old_tokens_everywhere_within_the_cache_ttl(
    tmp_path: Path,
) -> None:
    med_gen, med, fol_gen, fol = await _mediation_and_followup(tmp_path)
    try:
        admin = med.bearer(ADMIN)
        issued = await med.client.post(f"/v1/admin/mediators/{MEDIATOR_A}/token", headers=admin)
        assert issued.status_code == 200, issued.text
        old = {"Authorization": f"Bearer {issued.json()['token']}"}
        assert (await med.client.get("/v1/mediation/cases", headers=old)).status_code == 200
        assert (await fol.client.get("/v1/cases", headers=old)).status_code == 200
        # a second follow-up instance that has the old status cached (it did not consume)
        rt = fol.app.state.runtime
        now = [1000.0]
        other_instance = StaffStatusCache(
            rt.sessions, rt.delivery.tables.staff, ttl_s=30, clock=lambda: now[0]
        )
        who = StaffPrincipal(MEDIATOR_A, "mediator", version=0)
        assert await other_instance.allows(who)

        r = await med.client.patch(
            f"/v1/admin/mediators/{MEDIATOR_A}", headers=admin, json={"active": False}
        )
        assert r.status_code == 200, r.text
        await med.settle()
        # staff.changed reaches follow-up over the bus (the same event mediation consumed)
        staff_topic = med.app.state.runtime.topics.staff
        for message in med.app.state.runtime.bus.log[staff_topic]:
            await rt.bus.publish([_as_outgoing(rt.topics.staff, message)])
        await rt.bus.drain()

        for svc, path in ((med, "/v1/mediation/cases"), (fol, "/v1/cases")):
            refused = await svc.client.get(path, headers=old)
            assert refused.status_code == 401 and "revoked" in refused.text, svc.name
        # the other instance still trusts its cache … until the entry is older than its TTL
        assert await other_instance.allows(who)
        now[0] += 30
        assert not await other_instance.allows(who)
        # re-activated, the member of staff needs a new token: the old one stays dead
        await med.client.patch(
            f"/v1/admin/mediators/{MEDIATOR_A}", headers=admin, json={"active": True}
        )
        await med.settle()
        assert (await med.client.get("/v1/mediation/cases", headers=old)).status_code == 401
        fresh = await med.client.post(f"/v1/admin/mediators/{MEDIATOR_A}/token", headers=admin)
        new = {"Authorization": f"Bearer {fresh.json()['token']}"}
        assert (await med.client.get("/v1/mediation/cases", headers=new)).status_code == 200
    finally:
        for gen in (fol_gen, med_gen):
            with pytest.raises(StopAsyncIteration):
                await gen.__anext__()


async def test_a_move_to_another_organisation_revokes_old_tokens(tmp_path: Path) -> None:
    med_gen, med, fol_gen, fol = await _mediation_and_followup(tmp_path)
    try:
        admin = med.bearer(ADMIN)
        issued = await med.client.post(f"/v1/admin/mediators/{MEDIATOR_A}/token", headers=admin)
        old = {"Authorization": f"Bearer {issued.json()['token']}"}
        orgs = (await med.client.get("/v1/admin/organisations", headers=admin)).json()["items"]
        other = next(o["id"] for o in orgs if o["id"] != "people-town" and o.get("channel"))
        r = await med.client.patch(
            f"/v1/admin/mediators/{MEDIATOR_A}", headers=admin, json={"organisation_id": other}
        )
        assert r.status_code == 200, r.text
        await med.settle()
        assert (await med.client.get("/v1/mediation/cases", headers=old)).status_code == 401
    finally:
        for gen in (fol_gen, med_gen):
            with pytest.raises(StopAsyncIteration):
                await gen.__anext__()


def test_the_token_lifetime_cannot_be_configured_past_an_hour() -> None:
    from pydantic import ValidationError

    from services.mediation.settings import MediationSettings

    with pytest.raises(ValidationError, match="token_ttl_s"):
        MediationSettings(dev_mode=True, token_ttl_s=30 * 24 * 3600)


def _as_outgoing(topic: str, message: Any) -> Any:
    from shared.bus import OutgoingMessage

    key = message.key.decode() if message.key is not None else None
    return OutgoingMessage(topic, key, message.value)


_ = Running  # the harness type, for readers


def test_a_demo_member_signs_in_with_a_fresh_hour_in_dev_mode_only_with_our_key() -> None:
    from services.console.auth_pages import fresh_demo_token
    from services.console.settings import ConsoleSettings

    settings = ConsoleSettings(dev_mode=True)
    who = StaffPrincipal(MEDIATOR_A, "mediator", channel="people", organisation="people-town")
    stale = issue_token(DEV_JWT_PRIVATE_KEY, AUDIENCES, who, ttl=timedelta(seconds=-60))
    with pytest.raises(AuthError):
        check(stale, "fengqiao-console")
    fresh = check(fresh_demo_token(settings, stale), "fengqiao-console")
    assert (fresh.subject, fresh.organisation) == (MEDIATOR_A, "people-town")
    forged = issue_token(new_signing_keys()[0], AUDIENCES, ADMIN, ttl=timedelta(seconds=-60))
    assert fresh_demo_token(settings, forged) == forged  # not re-signed: still refused


async def _issued(med: Running, staff_id: str) -> dict[str, str]:
    issued = await med.client.post(
        f"/v1/admin/mediators/{staff_id}/token", headers=med.bearer(ADMIN)
    )
    assert issued.status_code == 200, issued.text
    old = {"Authorization": f"Bearer {issued.json()['token']}"}
    assert (
        await med.client.get(f"/v1/mediation/cases/{med.case_a}", headers=old)
    ).status_code == 200
    return old


@pytest.mark.parametrize("change", [{"active": False}, {"role": "viewer"}])
async def test_an_update_by_post_revokes_old_tokens_as_patch_does(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    """POST /v1/admin/mediators on an existing id is an update too: deactivated or given
    another role there, the old token stops working and staff.changed tells the others."""
    gen = run_mediation(tmp_path)
    med = await gen.__anext__()
    try:
        old = await _issued(med, MEDIATOR_A)
        listed = (await med.client.get("/v1/admin/mediators", headers=med.bearer(ADMIN))).json()
        me = next(m for m in listed["items"] if m["id"] == MEDIATOR_A)
        same = {k: me[k] for k in ("id", "name", "role", "organisation_id", "active")}
        r = await med.client.post("/v1/admin/mediators", headers=med.bearer(ADMIN), json=same)
        assert r.status_code == 201, r.text
        assert (await med.client.get("/v1/mediation/cases", headers=old)).status_code == 200
        r = await med.client.post(
            "/v1/admin/mediators", headers=med.bearer(ADMIN), json={**same, **change}
        )
        assert r.status_code == 201, r.text
        await med.settle()
        refused = await med.client.get(f"/v1/mediation/cases/{med.case_a}", headers=old)
        assert refused.status_code == 401 and "revoked" in refused.text
        changed = med.app.state.runtime.bus.log[med.app.state.runtime.topics.staff]
        assert len(changed) == 1  # the unchanged save revoked nothing
    finally:
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()


async def test_an_organisations_new_area_revokes_its_members_old_tokens(tmp_path: Path) -> None:
    """A token carries its organisation's area and tier: narrowed, the centre's coordinator's
    old token no longer opens a case of the area it lost."""
    gen = run_mediation(tmp_path)
    med = await gen.__anext__()
    try:
        old = await _issued(med, "coordinator-town")
        admin = med.bearer(ADMIN)
        orgs = (await med.client.get("/v1/admin/organisations", headers=admin)).json()["items"]
        centre = next(o for o in orgs if o["id"] == "coord-town")
        r = await med.client.post(
            "/v1/admin/organisations", headers=admin, json={**centre, "grid_codes": ["522731002"]}
        )
        assert r.status_code == 201, r.text
        await med.settle()
        refused = await med.client.get(f"/v1/mediation/cases/{med.case_a}", headers=old)
        assert refused.status_code == 401 and "revoked" in refused.text
        fresh = await med.client.post("/v1/admin/mediators/coordinator-town/token", headers=admin)
        new = {"Authorization": f"Bearer {fresh.json()['token']}"}
        # a new token carries the new area: case A is outside it
        assert (
            await med.client.get(f"/v1/mediation/cases/{med.case_a}", headers=new)
        ).status_code == 404
    finally:
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()
