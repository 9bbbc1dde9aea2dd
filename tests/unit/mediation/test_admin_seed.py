"""The demo seed, staff tokens and the admin API for organisations and mediators."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from services.mediation.channels import ChannelRegistry, UnknownChannel, default_channels
from services.mediation.channels.testing import TestChannel
from services.mediation.seed import seed_demo
from services.mediation.staff import issue_staff_token
from shared.auth import verify_token
from tests.unit.mediation.conftest import Svc, make_settings


async def test_seed_creates_the_demo_county_and_is_idempotent(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    first = await seed_demo(settings)
    second = await seed_demo(settings)
    assert [e["staff_id"] for e in first] == [e["staff_id"] for e in second]
    roles = Counter(e["role"] for e in first)
    assert roles["coordinator"] == 3 and roles["viewer"] == 1 and roles["mediator"] >= 15
    assert {(e["channel"], e["tier"]) for e in first if e["role"] == "mediator"} == {
        (c, t)
        for c in ("police", "court", "labour", "medical", "people")
        for t in ("grid", "town", "county")
    }
    assert any(e["night_on_call"] for e in first if e["role"] == "mediator")
    for e in first:
        p = verify_token(settings.jwt_public_key, settings.jwt_audience, e["token"])
        assert (p.role, p.channel, p.tier, p.organisation) == (
            e["role"],
            e["channel"],
            e["tier"],
            e["organisation"],
        )
        assert set(e) >= {"role", "channel", "tier", "organisation", "token"}
    coordinator = next(e for e in first if e["staff_id"] == "coordinator-county")
    assert verify_token(
        settings.jwt_public_key, settings.jwt_audience, coordinator["token"]
    ).grid_codes == ("522731",)


async def test_issue_staff_token_for_a_stored_mediator(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    await seed_demo(settings)
    token = await issue_staff_token(settings, "med-labour-grid-day")
    p = verify_token(settings.jwt_public_key, settings.jwt_audience, token)
    assert (p.subject, p.role, p.channel, p.tier, p.organisation) == (
        "med-labour-grid-day",
        "mediator",
        "labour",
        "grid",
        "labour-grid",
    )


async def test_admin_api_manages_organisations_and_mediators(svc: Svc) -> None:
    h = svc.token("coordinator-town")
    r = await svc.client.post(
        "/v1/admin/organisations",
        headers=h,
        json={
            "id": "people-town-hb",
            "name": "河坝乡人民调解委员会",
            "channel": "people",
            "tier": "town",
            "grid_codes": ["522731002001"],
        },
    )
    assert r.status_code == 201, r.text
    r = await svc.client.post(
        "/v1/admin/organisations",
        headers=h,
        json={"id": "x", "name": "x", "channel": "astrology", "tier": "town"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "channel"
    r = await svc.client.post(
        "/v1/admin/mediators",
        headers=h,
        json={
            "id": "med-hb",
            "name": "河坝调解员",
            "organisation_id": "people-town-hb",
            "day_shift": True,
            "night_on_call": True,
        },
    )
    assert r.status_code == 201 and r.json()["channel"] == "people"
    # the new organisation covers 522731002001 more precisely than people-town
    cid = await svc.triaged(grid_code="522731002001")
    assert ((await svc.case(cid))["organisation_id"], (await svc.case(cid))["mediator_id"]) == (
        "people-town-hb",
        "med-hb",
    )
    # off duty: the next case waits in the queue
    r = await svc.client.patch(
        "/v1/admin/mediators/med-hb", headers=h, json={"day_shift": False, "night_on_call": False}
    )
    assert r.status_code == 200 and r.json()["day_shift"] is False
    cid = await svc.triaged(grid_code="522731002001")
    assert (await svc.case(cid))["mediator_id"] is None
    r = await svc.client.get("/v1/admin/mediators?organisation_id=people-town-hb", headers=h)
    assert [m["id"] for m in r.json()["items"]] == ["med-hb"]
    r = await svc.client.get("/v1/admin/organisations", headers=svc.token("viewer-county"))
    assert r.status_code == 403
    r = await svc.client.post("/v1/admin/mediators/med-hb/token", headers=svc.token("admin"))
    p = verify_token(svc.settings.jwt_public_key, svc.settings.jwt_audience, r.json()["token"])
    assert (p.subject, p.organisation) == ("med-hb", "people-town-hb")


async def test_channel_registry_is_keyed_by_code() -> None:
    reg = default_channels()
    assert reg.codes() == ["court", "labour", "medical", "people", "police"]
    assert reg.get("labour").transfer_targets == ("arbitration", "litigation")
    assert reg.get("court").document_title == "诉前调解协议书"
    try:
        reg.get("astrology")
        raise AssertionError("expected UnknownChannel")
    except UnknownChannel:
        pass
    custom = ChannelRegistry([TestChannel(code="court")])
    assert custom.get("court").document_title == "测试调解协议书"


async def test_channels_endpoint_lists_plugins(svc: Svc) -> None:
    r = await svc.client.get("/v1/mediation/channels", headers=svc.token("viewer-county"))
    assert {c["code"] for c in r.json()["items"]} == {
        "court",
        "labour",
        "medical",
        "people",
        "police",
    }
