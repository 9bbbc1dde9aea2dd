"""Integrators: X-API-Key stored hashed, bound to a source, rate limited; admin creates them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from services.intake.repository import Integrator
from services.intake.seed import seed_demo
from shared.auth import StaffPrincipal, hash_api_key, issue_token
from tests.unit.intake.conftest import Intake, make_settings, report, start_intake


async def test_missing_or_unknown_key_is_401(intake: Intake) -> None:
    r = await intake.client.post("/v1/reports", json=report())
    assert r.status_code == 401
    assert r.json()["errors"] == [{"field": "X-API-Key", "reason": "missing"}]
    r = await intake.post(report(), key="fq_not-a-key")
    assert r.status_code == 401
    r = await intake.client.get("/v1/reports/110/R-1")
    assert r.status_code == 401


async def test_key_of_another_source_is_403(intake: Intake) -> None:
    r = await intake.post(report("110", "X-1"), key=intake.keys["12345"])
    assert r.status_code == 403
    assert r.json()["errors"][0]["field"] == "source"
    ok = await intake.post(report("110", "X-1"))
    assert ok.status_code == 202
    r = await intake.client.get("/v1/reports/110/X-1", headers={"X-API-Key": intake.keys["12345"]})
    assert r.status_code == 403


async def test_keys_are_stored_hashed(intake: Intake) -> None:
    async with intake.app.state.runtime.sessions() as s:
        rows = (await s.exec(select(Integrator))).all()
    stored = {r.api_key_hash for r in rows}
    for key in intake.keys.values():
        assert key not in stored and hash_api_key(key) in stored


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Intake]:
    settings = make_settings(tmp_path, rate_limit_per_s=0.01, rate_limit_burst=3)
    async for h in start_intake(settings):
        yield h


async def test_rate_limit_answers_429_with_retry_after(limited: Intake) -> None:
    codes = [(await limited.post(report(ref=f"RL-{i}"))).status_code for i in range(4)]
    assert codes == [202, 202, 202, 429]
    r = await limited.post(report(ref="RL-9"))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    other = await limited.post(report("grid", "RL-G"))  # another key has its own bucket
    assert other.status_code == 202


def token(intake: Intake, role: str, **kw: Any) -> dict[str, str]:
    s = intake.app.state.settings
    p = StaffPrincipal(subject=kw.pop("subject", "u1"), role=role, **kw)
    jwt = issue_token(s.jwt_private_key, s.jwt_audience, p)
    return {"Authorization": f"Bearer {jwt}"}


async def test_admin_creates_an_integrator_whose_key_works(intake: Intake) -> None:
    body = {"name": "县12345热线", "source": "12345", "callback_url": "https://crm.example.cn/cb"}
    assert (await intake.client.post("/v1/integrators", json=body)).status_code == 401
    r = await intake.client.post("/v1/integrators", json=body, headers=token(intake, "viewer"))
    assert r.status_code == 403
    r = await intake.client.post("/v1/integrators", json=body, headers=token(intake, "admin"))
    assert r.status_code == 201
    created = r.json()
    assert created["api_key"].startswith("fq_") and len(created["webhook_secret"]) >= 16
    ok = await intake.post(report("12345", "NEW-1"), key=created["api_key"])
    assert ok.status_code == 202
    bad = await intake.client.post(
        "/v1/integrators", headers=token(intake, "admin"), json={"name": "x", "source": "999"}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "source"


async def test_seed_demo_creates_and_recreates_one_key_per_source(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    first = await seed_demo(settings)
    second = await seed_demo(settings)
    assert set(first) == set(second) == {"110", "12345", "grid"}
    async for h in start_intake(settings):
        for source in first:
            assert (
                await h.post(report(source, f"SEED-{source}"), key=second[source]["api_key"])
            ).status_code == 202
            assert (
                await h.post(report(source, f"OLD-{source}"), key=first[source]["api_key"])
            ).status_code == 401


async def test_staff_see_reports_in_clear_only_with_a_role_that_works_with_parties(
    intake: Intake,
) -> None:
    parties = [{"name": "周大福", "phone": "13511112222", "id_number": "522731198001011234"}]
    r = await intake.post(
        report(
            "110",
            "ST-1",
            text="周大福（13511112222）称被打。",
            parties=parties,
            location={"address": "南溪县城关镇幸福路1号"},
        )
    )
    case_id = r.json()["case_id"]
    url = f"/v1/cases/{case_id}/reports"
    assert (await intake.client.get(url)).status_code == 401
    # before the case is assigned, it exists for no mediator
    assert (await intake.client.get(url, headers=token(intake, "mediator"))).status_code == 404
    await intake.publish_trail(
        case_id,
        "triaged",
        "assigned",
        details={"channel": "police", "tier": "town", "organisation_id": "o1", "mediator_id": "u1"},
        actor="system:mediation",
    )
    await intake.settle()
    me = {"channel": "police", "organisation": "o1"}
    clear = await intake.client.get(url, headers=token(intake, "mediator", **me))
    assert clear.status_code == 200 and clear.json()["personal_data"] == "clear"
    [rep] = clear.json()["reports"]
    assert rep["parties"][0]["phone"] == "13511112222" and "13511112222" in rep["text"]
    masked = await intake.client.get(url, headers=token(intake, "viewer"))
    assert masked.json()["personal_data"] == "masked"
    assert "13511112222" not in masked.text and "522731198001011234" not in masked.text
    assert "幸福路1号" not in masked.text and "周大福" not in masked.text
    assert masked.json()["reports"][0]["text"].startswith("周*福（135****2222）")
    missing = await intake.client.get("/v1/cases/nope/reports", headers=token(intake, "admin"))
    assert missing.status_code == 404
