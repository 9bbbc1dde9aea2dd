"""The HTTP edge: authentication before bodies, per-route body limits, a rate limit shared by
instances that also counts failed keys, keys and callback URLs out of URLs and logs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col

from services.intake.integrators import IntegratorGate
from services.intake.repository import Integrator
from shared.auth import AUDIENCES, StaffPrincipal, issue_token, new_signing_keys
from tests.unit.intake.conftest import Intake, make_settings, report, start_intake
from tests.unit.security.conftest import Running


async def _asgi(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """Call the app directly with a body it must never read; return the status."""
    read: list[bool] = []
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        read.append(True)
        return {"type": "http.request", "body": b'{"reason": "x"}', "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("203.0.113.9", 5000),
        "server": ("svc", 80),
    }
    await app(scope, receive, send)
    assert not read, "the body was read before authentication"
    return status[0]


async def test_no_body_is_read_before_the_caller_is_authenticated(running: Running) -> None:
    path = {
        "intake": "/v1/integrators",
        "triage": "/v1/triage/preview",
        "mediation": f"/v1/cases/{running.case_a}/return",
        "followup": f"/v1/cases/{running.case_a}/visits",
    }[running.name]
    assert await _asgi(running.app, "POST", path, []) == 401
    forged = issue_token(new_signing_keys()[0], AUDIENCES, StaffPrincipal("x", "admin"))
    bad = [(b"authorization", f"Bearer {forged}".encode())]
    assert await _asgi(running.app, "POST", path, bad) == 401


async def test_bodies_are_limited_per_route(intake: Intake) -> None:
    big = report("110", "BIG-1", text="漏水" * 10) | {"padding": "x" * (300 * 1024)}
    r = await intake.post(big)
    assert r.status_code == 413
    batch = {"reports": [report("110", "BIG-2")], "padding": "x" * (300 * 1024)}
    r = await intake.client.post(
        "/v1/reports:batch", json=batch, headers={"X-API-Key": intake.keys["110"]}
    )
    assert r.status_code == 200, r.text  # the batch route takes more


async def test_the_rate_limit_is_shared_by_instances(intake: Intake) -> None:
    sessions = intake.app.state.runtime.sessions
    now = [1000.0]
    one = IntegratorGate(sessions, rate_per_s=0.001, burst=3, clock=lambda: now[0])
    two = IntegratorGate(sessions, rate_per_s=0.001, burst=3, clock=lambda: now[0])
    waits = [await one.throttle("k"), await two.throttle("k"), await one.throttle("k")]
    assert waits == [0.0, 0.0, 0.0]
    assert await two.throttle("k") > 0  # the fourth call, on either instance, waits


async def test_leased_tokens_never_exceed_the_shared_bucket(intake: Intake) -> None:
    sessions = intake.app.state.runtime.sessions
    now = [1000.0]
    gates = [
        IntegratorGate(sessions, rate_per_s=10, burst=40, clock=lambda: now[0]) for _ in range(2)
    ]
    assert gates[0].lease == 5  # an eighth of the burst (less than a second of the rate)

    async def allowed(calls: int) -> int:  # the two instances take turns, each with a lease
        return sum([await gates[i % 2].throttle("k") == 0 for i in range(calls)])

    assert await allowed(60) == 40  # the burst, not the burst plus the unspent leases
    now[0] += 1.5  # the leases run out; the shared bucket gained 15 tokens
    assert await allowed(60) == 15


async def test_a_deactivated_key_is_refused_once_its_cached_answer_runs_out(
    intake: Intake,
) -> None:
    sessions = intake.app.state.runtime.sessions
    now = [1000.0]
    gate = IntegratorGate(sessions, 1000, 1000, clock=lambda: now[0], auth_cache_s=5)
    key = intake.keys["110"]
    integ = await gate.authenticate(key)
    assert integ is not None
    async with sessions() as s, s.begin():
        await s.exec(update(Integrator).where(col(Integrator.id) == integ.id).values(active=False))
    assert await gate.authenticate(key) is not None  # within the cached 5 s
    now[0] += 5.1
    assert await gate.authenticate(key) is None


@pytest.fixture
async def strict(tmp_path: Path) -> Any:
    async for h in start_intake(make_settings(tmp_path, failed_key_burst=3)):
        yield h


async def test_failed_keys_are_counted_and_then_refused(strict: Intake) -> None:
    codes = []
    for i in range(5):
        r = await strict.post(report("110", f"FK-{i}"), key=f"fq_guess_{i}")
        codes.append(r.status_code)
    assert codes == [401, 401, 401, 429, 429]
    # the guessing client is slowed down even when it finally holds a real key
    r = await strict.post(report("110", "FK-9"))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


async def test_keys_and_callback_urls_stay_out_of_logs(
    intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the level services run at (DEBUG is for a developer)
    s = intake.app.state.settings
    admin = issue_token(s.jwt_private_key, s.jwt_audience, StaffPrincipal("a", "admin"))
    callback = "https://crm.example.cn/hook?token=SECRET-CALLBACK-TOKEN"
    created = await intake.client.post(
        "/v1/integrators",
        headers={"Authorization": f"Bearer {admin}"},
        json={"name": "CRM", "source": "grid", "callback_url": callback},
    )
    assert created.status_code == 201
    key = created.json()["api_key"]
    await intake.post(report("grid", "LOG-1"), key=key)
    await intake.client.get(f"/v1/reports/grid/LOG-1?api_key={key}")
    await intake.settle()
    # the services' own records (the test client's httpx log line is the caller's, not ours)
    logged = "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name != "httpx"
    )
    assert key not in logged and "SECRET-CALLBACK-TOKEN" not in logged
    assert "crm.example.cn/hook" not in logged


async def test_a_nul_in_the_path_or_query_is_refused_before_any_route(running: Running) -> None:
    """PostgreSQL text holds no NUL: an id or filter carrying one failed in the database (500).
    Every service refuses it at the edge, naming where it was."""
    import httpx

    path = {
        "intake": "/v1/reports/%00",
        "triage": "/v1/triage/cases/%00/decisions",
        "mediation": "/v1/mediation/cases/%00",
        "followup": "/v1/cases/%00",
    }[running.name]
    transport = httpx.ASGITransport(app=running.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        r = await client.get(path)
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "path", "reason": "contains a NUL character"}]
        r = await client.get(f"/v1/cases/{running.case_a}", params={"since": "2026\x00"})
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "query", "reason": "contains a NUL character"}]


async def test_an_unreadable_body_is_a_422_naming_the_body_and_keys_are_never_echoed(
    running: Running,
) -> None:
    """A body that is not UTF-8 or not JSON names `body` (not the framework's 400 with no field,
    nor the byte position as a field); a client's own key is named only when it looks like a
    field name (it could be the input itself: a name, a phone number)."""
    path = {
        "intake": "/v1/reports",
        "triage": "/v1/triage/preview",
        "mediation": f"/v1/cases/{running.case_a}/return",
        "followup": f"/v1/cases/{running.case_a}/visits",
    }[running.name]
    headers = {
        **running.bearer(StaffPrincipal("a", "admin")),
        "Content-Type": "application/json",
    }
    if running.name == "intake":
        headers["X-API-Key"] = running.extra["keys"]["110"]
    for body, reason in ((b'{"text": "\x80"}', "UTF-8"), (b'{"text": ', "JSON")):
        r = await running.client.post(path, content=body, headers=headers)
        assert r.status_code == 422, r.text
        [problem] = r.json()["errors"]
        assert problem["field"] == "body" and reason in problem["reason"], r.text
    if running.name == "intake":  # its own parser looks at every key
        r = await running.client.post(
            path, content='{"张三13912345678": "a\\u0000b"}'.encode(), headers=headers
        )
        assert r.status_code == 422, r.text
        assert "13912345678" not in r.text and "张三" not in r.text
        assert {"field": "<key>", "reason": "contains a NUL character"} in r.json()["errors"]


async def test_a_database_that_is_away_is_a_503_to_send_again_never_a_500(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that found the database away or locked: the caller is told to send it again
    (503, Retry-After), not that the service failed; any other error stays a 500 that says
    nothing."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from services.intake import api

    async def away(*_a: object, **_k: object) -> None:
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("database is locked"))

    async def broken(*_a: object, **_k: object) -> None:
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x"))

    import httpx

    key = {"X-API-Key": intake.keys["110"]}
    # the server's answer, as a client sees it (the test transport would re-raise the error)
    transport = httpx.ASGITransport(app=intake.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        monkeypatch.setattr(api, "report_by_ref", away)
        r = await client.get("/v1/reports/110/R-1", headers=key)
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert r.json()["detail"] == "the database is unavailable; send again"
        monkeypatch.setattr(api, "report_by_ref", broken)
        r = await client.get("/v1/reports/110/R-1", headers=key)
        assert r.status_code == 500 and r.json() == {"detail": "internal error", "errors": []}
