"""Schemathesis fuzzes every operation of the four services from each app's own OpenAPI schema.

The standard: bad input gets a clear 4xx naming the field and the reason, never a 5xx. Each
service is served by uvicorn on 127.0.0.1 (memory bus, a SQLite file in a temporary folder);
intake and mediation are seeded with their demo data first. Every call carries a valid admin
bearer token, and intake calls a valid integrator X-API-Key, so the generated input (positive
and negative) reaches the handlers instead of stopping at authentication.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from schemathesis.checks import not_a_server_error

from services.followup.main import create_app as followup_app
from services.followup.settings import FollowupSettings
from services.intake.main import create_app as intake_app
from services.intake.seed import seed_demo as seed_intake
from services.intake.settings import IntakeSettings
from services.mediation.main import create_app as mediation_app
from services.mediation.seed import seed_demo as seed_mediation
from services.mediation.settings import MediationSettings
from services.triage.main import create_app as triage_app
from services.triage.settings import TriageSettings
from shared.auth import StaffPrincipal, issue_token
from shared.bus import InMemoryBus
from shared.settings import ServiceSettings
from tests.fuzzing import fuzz_settings

FUZZ = fuzz_settings(12)  # derandomized in CI; tests/fuzzing.py says how to hunt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def base(tmp: Path, name: str) -> dict[str, Any]:
    return {
        "bus": "memory",
        "database_url": f"sqlite+aiosqlite:///{tmp / f'{name}.db'}",
        "topic_prefix": "",
        "group_prefix": "",
        "relay_interval_s": 0.05,
        "dev_mode": True,
    }


class Live:
    """One service app served by uvicorn in a background thread, with the headers to call it."""

    def __init__(self, app: FastAPI, settings_: ServiceSettings) -> None:
        self.app = app
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        admin = StaffPrincipal(subject="fuzz-admin", role="admin")
        token = issue_token(settings_.jwt_private_key, settings_.jwt_audience, admin)
        self.headers: dict[str, str] = {"Authorization": f"Bearer {token}"}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Live:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            time.sleep(0.02)
        assert self.server.started, "service did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("intake")
    s = IntakeSettings(
        **base(tmp, "intake"), rate_limit_per_s=10_000.0, rate_limit_burst=10_000, webhook_poll_s=5
    )
    keys = asyncio.run(seed_intake(s))
    with Live(intake_app(s, bus=InMemoryBus(), configure_logs=False), s) as live:
        live.headers["X-API-Key"] = keys["110"]["api_key"]
        yield live


@pytest.fixture(scope="module")
def triage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    s = TriageSettings(**base(tmp_path_factory.mktemp("triage"), "triage"))
    with Live(triage_app(s, bus=InMemoryBus()), s) as live:
        yield live


@pytest.fixture(scope="module")
def mediation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    s = MediationSettings(**base(tmp_path_factory.mktemp("mediation"), "mediation"))
    staff = asyncio.run(seed_mediation(s))
    assert staff, "the demo county has staff"
    with Live(mediation_app(s, bus=InMemoryBus()), s) as live:
        yield live


@pytest.fixture(scope="module")
def followup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    s = FollowupSettings(**base(tmp_path_factory.mktemp("followup"), "followup"))
    with Live(followup_app(s, bus=InMemoryBus()), s) as live:
        yield live


def own_schema(make: Callable[[], FastAPI]) -> Any:
    """The app's own OpenAPI schema (building the app connects to nothing)."""
    return schemathesis.openapi.from_dict(make().openapi())


def names_field_or_detail(body: Any) -> bool:
    """A 4xx JSON body says what is wrong: a detail, or errors naming a field and a reason."""
    if isinstance(body, list):  # Open311 GeoReport errors: [{code, description}]
        return bool(body) and all(isinstance(e, dict) and e.get("description") for e in body)
    if not isinstance(body, dict):
        return False
    errors = body.get("errors")
    if errors:  # every field it blames, with why
        return isinstance(errors, list) and all(
            isinstance(e, dict) and e.get("field") and e.get("reason") for e in errors
        )
    return bool(body.get("detail"))  # none to blame (a 409's state, a 401): the detail says


def check(case: Any, live: Live) -> None:
    headers = {**(case.headers or {}), **live.headers}
    response = case.call(base_url=live.base_url, headers=headers)
    case.validate_response(response, checks=[not_a_server_error])
    content_type = response.headers.get("content-type", "")
    if isinstance(content_type, list):  # Schemathesis 4 keeps a header's values as a list
        content_type = " ".join(content_type)
    if 400 <= response.status_code < 500 and "json" in content_type:
        body = response.json()
        assert names_field_or_detail(body), (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
        )


INTAKE = own_schema(lambda: intake_app(IntakeSettings(dev_mode=True), configure_logs=False))
TRIAGE = own_schema(lambda: triage_app(TriageSettings(dev_mode=True)))
MEDIATION = own_schema(lambda: mediation_app(MediationSettings(dev_mode=True)))
FOLLOWUP = own_schema(lambda: followup_app(FollowupSettings(dev_mode=True)))


@INTAKE.parametrize()
@FUZZ
def test_intake_never_answers_5xx(case: Any, intake: Live) -> None:
    check(case, intake)


@TRIAGE.parametrize()
@FUZZ
def test_triage_never_answers_5xx(case: Any, triage: Live) -> None:
    check(case, triage)


@MEDIATION.parametrize()
@FUZZ
def test_mediation_never_answers_5xx(case: Any, mediation: Live) -> None:
    check(case, mediation)


@FOLLOWUP.parametrize()
@FUZZ
def test_followup_never_answers_5xx(case: Any, followup: Live) -> None:
    check(case, followup)


def test_fixed_findings_answer_clearly(triage: Live, mediation: Live) -> None:
    """What the fuzzing found: a viewer of an unknown organisation, a long run of digits."""
    r = httpx.post(
        f"{mediation.base_url}/v1/admin/mediators",
        json={"id": "v1", "name": "0", "role": "viewer", "organisation_id": "nowhere"},
        headers=mediation.headers,
    )
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "organisation_id", "reason": "no such organisation"}]
    for text in ("0" * 20_000, "一" * 20_000):
        r = httpx.post(
            f"{triage.base_url}/v1/triage/preview",
            json={"source": "110", "text": text},
            headers=triage.headers,
            timeout=10,
        )
        assert r.status_code == 200, r.text
