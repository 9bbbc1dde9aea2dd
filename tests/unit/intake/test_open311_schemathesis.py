"""Schemathesis runs the Open311 GeoReport v2 spec against the running intake endpoints.

The spec in ../shared/open311-georeport-v2/swagger.json is used as published except for its
known defects, corrected in a copy made here (the shared file is never edited):

1. no basePath: our endpoints live under /open311/v2.
2. `/request/{id}` is singular; GeoReport v2 reads one request at `/requests/{id}.{format}`.
3. `response_format` is typed as a "uid"; it is the file extension — this service speaks json.
4. `jurisdiction_id` is marked required; GeoReport v2 makes it optional.
5. POST parameters are declared `in: query`; GeoReport v2 posts them as a form, and the
   documented fields description, first_name, last_name, phone, email, device_id, account_id
   and media_url are missing.
6. GET /requests/{id} answers a list of one request in GeoReport v2 (see requests.json).
7. Error answers (GeoReport's list of {code, description}) are not declared; every operation
   may answer 422 (a NUL in the path or query is refused before any route runs).
8. The swagger definitions allow no nulls; we never send nulls, so they stay as they are.

Responses are also checked against the JSON schemas beside the spec (services.json,
requests.json) with their `$ref`s inlined.
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
import uvicorn
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.intake.integrators import create_integrator
from services.intake.main import create_app
from shared.bus import InMemoryBus
from tests.fuzzing import fuzz_settings
from tests.unit.intake.conftest import make_settings

SPEC_DIR = Path(__file__).resolve().parents[4] / "shared" / "open311-georeport-v2"
ERROR = {
    "description": "GeoReport error list",
    "schema": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["code", "description"],
            "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
        },
    },
}
FORM_FIELDS = (
    "description",
    "first_name",
    "last_name",
    "phone",
    "email",
    "device_id",
    "account_id",
    "media_url",
)


def corrected_spec(example_request_id: str | None = None) -> dict[str, Any]:
    """A copy of the published spec with the known defects above corrected.

    Examples (`x-example`, which restrict nothing) point one generated case of each operation
    at a real service code and request id so that the success paths are exercised too.
    """
    spec = copy.deepcopy(json.loads((SPEC_DIR / "swagger.json").read_text(encoding="utf-8")))
    spec["basePath"] = "/open311/v2"
    params = spec["parameters"]
    params["response_format"] = {
        "name": "response_format",
        "in": "path",
        "required": True,
        "type": "string",
        "enum": ["json"],
    }
    params["jurisdiction_id"]["required"] = False
    paths = spec["paths"]
    create = paths["/requests.{response_format}"]["post"]
    for p in create["parameters"]:
        if p.get("in") == "query":
            p["in"] = "formData"
    create["parameters"] += [
        {"name": f, "in": "formData", "required": False, "type": "string"} for f in FORM_FIELDS
    ]
    create["consumes"] = ["application/x-www-form-urlencoded"]
    for p in create["parameters"]:
        example = {"service_code": "neighbour", "description": "楼上漏水，邻里争吵"}.get(
            p.get("name", "")
        )
        if example:
            p["x-example"] = example
    create["responses"].update(
        {code: ERROR for code in ("401", "403", "404", "409", "413", "415", "422", "429")}
    )
    read = paths.pop("/request/{service_request_id}.{response_format}")["get"]
    read["responses"]["200"]["schema"] = {
        "type": "array",
        "items": {"$ref": "#/definitions/Request"},
    }
    read["responses"]["404"] = ERROR
    read["responses"]["401"] = ERROR  # reads need the integrator's key too (X-API-Key)
    read["responses"]["422"] = ERROR
    if example_request_id:
        for p in read["parameters"]:
            if p.get("name") == "service_request_id":
                p["x-example"] = example_request_id
    listing = paths["/services.{response_format}"]["get"]
    listing["responses"]["422"] = ERROR
    spec["paths"] = {
        "/services.{response_format}": {"get": listing},
        "/requests.{response_format}": {"post": create},
        "/requests/{service_request_id}.{response_format}": {"get": read},
    }
    return spec


def folder_schema(name: str) -> Any:
    """services.json / requests.json with their item $ref inlined."""
    outer = json.loads((SPEC_DIR / f"{name}s.json").read_text(encoding="utf-8"))
    outer["items"] = json.loads((SPEC_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return jsonschema_rs.validator_for(outer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveIntake:
    """The intake app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, tmp: Path) -> None:
        settings_ = make_settings(tmp, rate_limit_per_s=10_000.0, rate_limit_burst=10_000)
        self.app = create_app(settings_, bus=InMemoryBus(), configure_logs=False)
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.api_key = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/open311/v2"

    def start(self) -> None:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            time.sleep(0.02)
        assert self.server.started, "intake did not start"
        h = self.app.state.handlers
        loop = self.server_loop()
        fut = asyncio.run_coroutine_threadsafe(
            create_integrator(h.delivery.sessions, h.cipher, name="crm", source="12345"), loop
        )
        self.api_key = fut.result(10).api_key
        r = httpx.post(
            f"{self.base_url}/requests.json",
            data={"api_key": self.api_key, "service_code": "labour", "description": "拖欠工资"},
        )
        assert r.status_code == 200
        self.known_request_id: str = r.json()[0]["service_request_id"]

    def server_loop(self) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop = self.app.state.runtime.relay._task.get_loop()
        return loop

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveIntake]:
    server = LiveIntake(tmp_path_factory.mktemp("open311"))
    server.start()
    yield server
    server.stop()


# The example id is swapped for a request that exists on the live server at call time.
KNOWN_REQUEST = "known-request"
schema = schemathesis.openapi.from_dict(corrected_spec(KNOWN_REQUEST))
SERVICES_SCHEMA = folder_schema("service")
REQUESTS_SCHEMA = folder_schema("request")


@schema.parametrize()
@fuzz_settings(30)  # derandomized in CI; tests/fuzzing.py says how to hunt
def test_open311_spec_conformance(case: Any, live: LiveIntake) -> None:
    if (case.path_parameters or {}).get("service_request_id") == KNOWN_REQUEST:
        case.path_parameters["service_request_id"] = live.known_request_id
    # the key travels in a header, never in the URL
    case.headers = {**(case.headers or {}), "X-API-Key": live.api_key}
    response = case.call(base_url=live.base_url)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    if response.status_code == 200 and case.method == "GET":
        body = response.json()
        target = SERVICES_SCHEMA if "services" in case.path else REQUESTS_SCHEMA
        target.validate(body)


def test_created_requests_read_back_valid(live: LiveIntake) -> None:
    """A positive round trip through the same server, validated by the folder schemas."""
    with httpx.Client(base_url=live.base_url) as client:
        services = client.get("/services.json").json()
        SERVICES_SCHEMA.validate(services)
        for svc in services:
            r = client.post(
                "/requests.json",
                data={
                    "api_key": live.api_key,
                    "service_code": svc["service_code"],
                    "description": f"测试：{svc['service_name']}纠纷",
                    "lat": "27.2",
                    "long": "107.1",
                },
            )
            assert r.status_code == 200, r.text
            rid = r.json()[0]["service_request_id"]
            got = client.get(f"/requests/{rid}.json", headers={"X-API-Key": live.api_key})
            assert got.status_code == 200
            REQUESTS_SCHEMA.validate(got.json())
