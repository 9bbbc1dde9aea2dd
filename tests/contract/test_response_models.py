"""Every route of the four services declares its body, so the OpenAPI documents real bodies.

The routes come from each app's own route table: a JSON route whose response model is missing,
a bare dict or Any fails; a route that answers something other than JSON (metrics, the
agreement document, CSV/XLSX exports) declares that media type instead. Every error a route may
answer is documented with the one error body (shared.errors.ErrorBody). The bodies themselves
are checked against these models under FENGQIAO_STRICT_BODIES (tests/conftest.py) by every
test that calls a route, and the ETag routes, which render their own bodies, in
tests/contract/test_trail_contract.py.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from services.followup.main import create_app as followup_app
from services.intake.main import create_app as intake_app
from services.mediation.main import create_app as mediation_app
from services.triage.main import create_app as triage_app

APPS: dict[str, Callable[[], FastAPI]] = {
    "intake": intake_app,
    "triage": triage_app,
    "mediation": mediation_app,
    "followup": followup_app,
}
# routes that answer something other than JSON: (service, path) → the media types declared
NOT_JSON = {
    ("intake", "/metrics"),
    ("triage", "/metrics"),
    ("mediation", "/metrics"),
    ("followup", "/metrics"),
    ("mediation", "/v1/cases/{case_id}/agreement/document"),
}
# JSON routes that may also answer a file
ALSO_FILES = {("followup", "/v1/stats/series"): {"text/csv"}}


def _is_model(tp: Any) -> bool:
    """A pydantic model, or a list of them."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return True
    return typing.get_origin(tp) is list and all(_is_model(a) for a in typing.get_args(tp))


def _routes(app: FastAPI) -> list[Any]:
    return [r for r in iter_route_contexts(app.routes) if isinstance(r.original_route, APIRoute)]


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_json_route_declares_a_response_model(service: str) -> None:
    app = APPS[service]()
    routes = _routes(app)
    assert len(routes) > 8, "the route table was not walked"
    missing = []
    for r in routes:
        cls = r.response_class
        cls = cls.value if isinstance(cls, DefaultPlaceholder) else cls
        json_route = issubclass(cls, JSONResponse)
        if (service, r.path) in NOT_JSON:
            if json_route:
                missing.append((sorted(r.methods), r.path, "declares no non-JSON media type"))
        elif not json_route or not _is_model(r.response_model):
            missing.append((sorted(r.methods), r.path, r.response_model))
    assert not missing, f"{service}: routes without a typed body: {missing}"


@pytest.mark.parametrize("service", sorted(APPS))
def test_the_openapi_documents_each_body_and_the_error_body(service: str) -> None:
    doc = APPS[service]().openapi()
    schemas = doc["components"]["schemas"]
    assert "ErrorBody" in schemas and "FieldProblem" in schemas
    undocumented = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ok = [c for c in op["responses"] if c.startswith("2")]
            assert len(ok) == 1, (path, method, list(op["responses"]))
            content = op["responses"][ok[0]].get("content", {})
            if (service, path) in NOT_JSON:
                if not content or "application/json" in content:
                    undocumented.append((method, path, sorted(content)))
                continue
            schema = content.get("application/json", {}).get("schema", {})
            ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
            if not ref or not schemas[ref.rsplit("/", 1)[1]].get("properties"):
                undocumented.append((method, path, schema))
            for media in ALSO_FILES.get((service, path), set()):
                if media not in content:
                    undocumented.append((method, path, f"no {media}"))
            errors = {c: op["responses"].get(c) for c in ("401", "403", "404", "422")}
            for code, resp in errors.items():
                ref = (resp or {}).get("content", {}).get("application/json", {}).get("schema")
                if path.startswith("/open311/"):
                    continue  # GeoReport keeps its own error list
                if ref != {"$ref": "#/components/schemas/ErrorBody"}:
                    undocumented.append((method, path, code, ref))
    assert not undocumented, f"{service}: {undocumented}"
