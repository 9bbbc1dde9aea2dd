"""Open311 GeoReport v2 (JSON) for hotline CRMs: services, create a request, read one.

Service codes are our dispute types. Errors use the GeoReport error list
`[{"code": <http status>, "description": "<field>: <reason>"}]`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.intake.canonical import FieldError, validate_report
from services.intake.domain import (
    CHANNEL_NAMES,
    DISPUTE_TYPES,
    STATUS_NOTES,
    as_utc,
    open311_status,
)
from services.intake.edge import (
    authenticate,
    handlers_of,
    invalid,
    read_body,
    receipts_of,
    require_content_type,
    settings_of,
)
from services.intake.repository import IntakeCase, IntakeReport
from services.intake.schemas import Open311Created, Open311Error, Open311Request, Open311Service
from shared.errors import ApiError, NotFound, Unauthenticated
from shared.events import new_id, utcnow

# GeoReport errors are a list, not the services' ErrorBody
GEOREPORT_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": list[Open311Error], "description": "GeoReport error list"}
    for code in (401, 403, 404, 409, 413, 415, 422, 429)
}
router = APIRouter(prefix="/open311/v2", tags=["open311"], responses=GEOREPORT_ERRORS)
FORM = "application/x-www-form-urlencoded"
FORM_FIELDS = (
    "service_code",
    "description",
    "lat",
    "long",
    "address_string",
    "address_id",
    "first_name",
    "last_name",
    "phone",
    "email",
    "device_id",
    "account_id",
    "media_url",
    "jurisdiction_id",
    "api_key",
    "source_ref",
    "token",
)


def georeport_body(exc: ApiError) -> list[dict[str, Any]]:
    """An error of shared.errors as a GeoReport error list (also the edge's early answers:
    a NUL in the path or query, an oversized body)."""
    errors = exc.errors or [{"field": "request", "reason": exc.detail}]
    return [
        {"code": exc.status_code, "description": f"{e['field']}: {e['reason']}"} for e in errors
    ]


def open311_error(exc: ApiError) -> JSONResponse:
    """An error of shared.errors as a GeoReport error list."""
    return JSONResponse(
        georeport_body(exc), status_code=exc.status_code, headers=exc.headers or None
    )


async def _georeport(fn: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await fn()
    except ApiError as exc:
        return open311_error(exc)


@router.get("/services.json", response_model=list[Open311Service])
async def services() -> list[dict[str, Any]]:
    """One service per dispute type; service_code is the dispute_type code."""
    return [
        {
            "service_code": code,
            "service_name": name,
            "description": f"矛盾纠纷：{name}",
            "metadata": False,
            "type": "realtime",
            "keywords": ",".join(words) if words else name,
            "group": "矛盾纠纷",
        }
        for code, (name, words) in DISPUTE_TYPES.items()
    ]


def _form(raw: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        invalid([{"field": "body", "reason": "not a UTF-8 form-encoded body"}])
    form: dict[str, str] = {}
    for k, v in pairs:
        form.setdefault(k, v)
    return form


def _number(form: dict[str, str], key: str) -> float | None:
    v = form.get(key, "").strip()
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        invalid([{"field": key, "reason": "not a number"}])


@router.post(
    "/requests.json",
    response_model=list[Open311Created],
    openapi_extra={
        "requestBody": {
            "content": {
                FORM: {
                    "schema": {
                        "type": "object",
                        "required": ["service_code"],
                        "properties": {k: {"type": "string"} for k in FORM_FIELDS},
                    }
                }
            }
        }
    },
)
async def create_request(request: Request) -> Any:
    """Create a service request: a canonical report of the key's source."""

    async def work() -> Any:
        s = settings_of(request)
        refuse_key_in_query(request)
        header_key = request.headers.get("x-api-key")
        # with the key in a header (preferred) the caller is known before the body is read;
        # GeoReport's form field still works, within the route's 256 KiB body limit
        integ = await authenticate(request, header_key) if header_key else None
        require_content_type(request, FORM)
        form = _form(await read_body(request, s.max_body_bytes))
        if integ is None:
            integ = await authenticate(request, form.get("api_key"))
        code = form.get("service_code", "")
        if not code:
            invalid([{"field": "service_code", "reason": "field required"}])
        if code not in DISPUTE_TYPES:
            invalid([{"field": "service_code", "reason": "unknown service; see services.json"}])
        name = "".join(p for p in (form.get("last_name"), form.get("first_name")) if p) or None
        phone = form.get("phone") or None
        person = {"name": name, "phone": phone}
        data = {
            "source": integ.source,
            "source_ref": form.get("source_ref") or form.get("token") or f"open311-{new_id()}",
            # GeoReport makes description optional; the service name then says what it is
            "text": form.get("description", "").strip()
            or f"{DISPUTE_TYPES[code][0]}纠纷（来电未填写描述）",
            "category": DISPUTE_TYPES[code][0],
            "location": {
                "address": form.get("address_string") or None,
                "lat": _number(form, "lat"),
                "lon": _number(form, "long"),
            },
            "reporter": {**person, "role": "citizen"} if name or phone else None,
            "parties": [{**person, "role": "applicant"}] if name or phone else [],
        }
        try:
            report = validate_report(
                data,
                max_text_chars=s.max_text_chars,
                max_future_skew_s=s.max_future_skew_s,
                now=utcnow(),
            )
        except FieldError as exc:
            invalid([{**e, "field": _open311_field(e["field"])} for e in exc.errors])
        receipt = await receipts_of(request).receive(
            report, via="open311", integrator_id=integ.id, service_code=code
        )
        return [
            {
                "service_request_id": receipt.report_id,
                "service_notice": f"已受理，案件编号 {receipt.case_id}"
                + ("（已并单）" if receipt.merged else ""),
            }
        ]

    return await _georeport(work)


def refuse_key_in_query(request: Request) -> None:
    """Keys never travel in URLs (they end up in logs and proxies): 401 naming the field."""
    if "api_key" in request.query_params:
        raise Unauthenticated(
            "invalid request",
            [{"field": "api_key", "reason": "send the key in the X-API-Key header, not the URL"}],
            scheme="ApiKey",
        )


def _open311_field(field: str) -> str:
    return {
        "text": "description",
        "location.address": "address_string",
        "location.lat": "lat",
        "location.lon": "long",
        "source_ref": "source_ref",
        "reporter.phone": "phone",
        "parties.0.phone": "phone",
        "reporter.name": "first_name",
        "parties.0.name": "first_name",
    }.get(field, field)


@router.get("/requests/{service_request_id}.json", response_model=list[Open311Request])
async def get_request(service_request_id: str, request: Request) -> Any:
    """The current status of one of the caller's requests (X-API-Key; no personal data)."""

    async def work() -> Any:
        refuse_key_in_query(request)
        integ = await authenticate(request, request.headers.get("x-api-key"))
        async with handlers_of(request).delivery.sessions() as session:
            row = await session.get(IntakeReport, service_request_id[:64])
            case = await session.get(IntakeCase, row.case_id) if row else None
        if row is None or case is None or row.integrator_id != integ.id:
            raise NotFound("service request", "service_request_id")
        code = case.dispute_type or row.service_code or "other"
        out: dict[str, Any] = {
            "service_request_id": row.report_id,
            "status": open311_status(case.status),
            "status_notes": STATUS_NOTES.get(case.status, case.status),
            "service_name": DISPUTE_TYPES.get(code, ("其他",))[0],
            "service_code": code,
            "requested_datetime": as_utc(row.reported_at or row.received_at).isoformat(),
            "updated_datetime": as_utc(case.status_at).isoformat(),
        }
        if case.channel in CHANNEL_NAMES:
            out["agency_responsible"] = CHANNEL_NAMES[case.channel]
        return [out]

    return await _georeport(work)


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
    response_model=list[Open311Error],
    status_code=404,
)
async def unknown(path: str) -> JSONResponse:
    """Anything else under the Open311 root (e.g. an XML format) is a GeoReport 404."""
    return open311_error(NotFound("Open311 resource (this endpoint speaks .json)", "path"))


def install_not_found(app: FastAPI) -> None:
    """A path under the Open311 root that no route matches (not even `unknown`: its `path`
    converter stops at a line break) is a GeoReport 404 too, not the API's own error body."""
    shared_handler = app.exception_handlers[StarletteHTTPException]

    async def not_found(request: Request, exc: Exception) -> Response:
        if (
            isinstance(exc, StarletteHTTPException)
            and exc.status_code == 404
            and request.url.path.startswith("/open311/")
        ):
            return await unknown(request.url.path)
        response = shared_handler(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(StarletteHTTPException, not_found)
