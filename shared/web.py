"""HTTP edge shared by the services: clear 4xx errors, body limits, health routes, auth."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.audit import audit_router
from shared.auth import AuthError, StaffPrincipal, verify_token
from shared.db import HeadsMoved
from shared.errors import (
    ApiError,
    Conflict,
    ErrorBody,
    Invalid,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
    field_path,
)
from shared.pii import PiiKeyError
from shared.responses import NUL_REASON, Health, Readiness
from shared.settings import ServiceSettings

log = logging.getLogger("fengqiao.http")
RETRY_SOON = {"Retry-After": "1"}


def _problem(e: Mapping[str, Any]) -> dict[str, str]:
    """A framework validation error as {field, reason}: the field's path without the input."""
    if e.get("type") == "json_invalid":  # its loc is the byte position, not a field
        return {"field": "body", "reason": "not valid JSON"}
    parts = [p for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
    return {"field": field_path(parts) or "body", "reason": str(e.get("msg", "invalid"))}


def error_response(exc: ApiError) -> JSONResponse:
    """The one mapping of the error vocabulary (shared.errors) to HTTP."""
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers or None)


def error_bytes(exc: ApiError, body: Callable[[ApiError], Any] = ApiError.body) -> bytes:
    """The same body (or a path's own error form, e.g. GeoReport's list), encoded, for ASGI
    middleware that answers before any route runs."""
    return json.dumps(body(exc), ensure_ascii=False, separators=(",", ":")).encode()


# every route may answer these; the OpenAPI documents them with the one error body
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (401, "no valid credentials"),
        (403, "the caller's role may not do this"),
        (404, "no such thing, or none the caller may see (the same body)"),
        (422, "a field is invalid; `errors` names each field and reason"),
    )
}


def install_error_handlers(app: FastAPI) -> None:
    """Errors of shared.errors answer their status with the one ErrorBody; 422 names each
    field and reason without echoing the input; no 500 leaks details."""

    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(Invalid(errors=[_problem(e) for e in exc.errors()]))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        # the framework's own refusals (no such route, method not allowed), in the same shape
        if exc.status_code == 404:
            return error_response(NotFound("route", "path"))
        if exc.status_code == 400:  # a body the framework could not parse (not UTF-8 JSON)
            return error_response(Invalid.field("body", "not valid UTF-8 JSON"))
        err = ApiError(str(exc.detail), headers=exc.headers)
        return JSONResponse(err.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(HeadsMoved)
    async def _heads_moved(_req: Request, _exc: HeadsMoved) -> JSONResponse:
        # another transaction appended to the case's trail as this one committed: nothing of
        # this request was kept; done again, it follows that entry
        return error_response(Conflict("the case changed meanwhile; send the request again"))

    @app.exception_handler(PiiKeyError)
    async def _pii_key(req: Request, exc: PiiKeyError) -> JSONResponse:
        log.error("personal data cannot be decrypted", extra={"path": req.url.path})
        return error_response(
            Unavailable(
                "personal data cannot be decrypted with the configured keys",
                [{"field": "pii_key", "reason": "configure the key that sealed it"}],
            )
        )

    @app.exception_handler(Exception)
    async def _unexpected(req: Request, exc: Exception) -> JSONResponse:
        from shared.bus import is_unavailable

        if is_unavailable(exc):  # the database is away or busy: the caller tries again later
            log.warning(
                "database unavailable", extra={"path": req.url.path, "error": type(exc).__name__}
            )
            return error_response(
                Unavailable("the database is unavailable; send again", headers=RETRY_SOON)
            )
        log.error("unhandled error", extra={"path": req.url.path, "error": type(exc).__name__})
        return JSONResponse(ApiError("internal error").body(), status_code=500)


class BodyLimitMiddleware:
    """Answer 413 for bodies larger than the route's limit, before they are read whole, and 422
    for a NUL character in the path or the query (PostgreSQL text holds none: an id or filter
    with one failed in the database as a 500).

    `error_forms` maps a path prefix to the error body its clients read (Open311's GeoReport
    list); other paths answer the one error body."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        per_path: dict[str, int] | None = None,
        error_forms: dict[str, Callable[[ApiError], Any]] | None = None,
    ) -> None:
        self.app, self.default, self.per_path = app, max_bytes, per_path or {}
        self.error_forms = error_forms or {}

    def _form(self, path: str) -> Callable[[ApiError], Any]:
        for prefix, form in self.error_forms.items():
            if path.startswith(prefix):
                return form
        return ApiError.body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        form = self._form(path)
        where = _nul_in(scope)
        if where is not None:
            await _send_error(send, Invalid.field(where, NUL_REASON), form)
            return
        limit = self.per_path.get(path, self.default)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_error(send, PayloadTooLarge(limit), form)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return msg

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _send_error(send, PayloadTooLarge(limit), form)


class AuthenticateFirstMiddleware:
    """A request with a body to a staff route needs a valid bearer token before the body is
    read (a forged or missing token costs the caller a 401, not the service a parse).

    Routes under `key_paths` authenticate an integrator key themselves, before reading."""

    WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, app: ASGIApp, settings: ServiceSettings, key_paths: tuple[str, ...]) -> None:
        self.app, self.settings, self.key_paths = app, settings, key_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry."""
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope.get("method") not in self.WRITES
            or path.startswith(self.key_paths)
        ):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        s = self.settings
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("bearer token required")
            verify_token(s.jwt_public_key, s.jwt_audience, token.strip(), issuer=s.jwt_issuer)
        except AuthError as exc:
            body = error_bytes(Unauthenticated(str(exc)))
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b"Bearer"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _nul_in(scope: Scope) -> str | None:
    """`path` or `query` when a NUL character is in it (raw, or %00 in the query)."""
    if "\x00" in scope.get("path", ""):
        return "path"
    query = scope.get("query_string") or b""
    if b"%00" in query or b"\x00" in query:
        return "query"
    return None


async def _send_error(
    send: Send, exc: ApiError, form: Callable[[ApiError], Any] = ApiError.body
) -> None:
    body = error_bytes(exc, form)
    await send(
        {
            "type": "http.response.start",
            "status": exc.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def health_router(checks: Callable[[], Awaitable[dict[str, bool]]]) -> APIRouter:
    """GET /healthz (alive) and GET /readyz (database and broker reachable)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    async def readyz() -> JSONResponse:
        results = await checks()
        ok = all(results.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": results},
            status_code=200 if ok else 503,
        )

    return router


def service_app(
    title: str,
    settings: ServiceSettings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    max_body_bytes: int = 256 * 1024,
    body_limits: dict[str, int] | None = None,
    key_paths: tuple[str, ...] = (),
    error_forms: dict[str, Callable[[ApiError], Any]] | None = None,
) -> FastAPI:
    """A service's FastAPI app with authentication before bodies, per-route body limits
    (256 KiB unless a route says otherwise), error handlers and health routes in place.
    `error_forms`: path prefixes whose clients read another error body (see BodyLimitMiddleware)."""
    # one schema per model, its declared fields (shared.responses.Body only leaves out the
    # fields a route did not write): the OpenAPI documents real bodies
    app = FastAPI(
        title=title,
        version="0.1.0",
        lifespan=_with_tuned_gc(lifespan),
        responses=ERROR_RESPONSES,
        separate_input_output_schemas=False,
    )
    app.state.settings = settings
    app.add_middleware(AuthenticateFirstMiddleware, settings=settings, key_paths=key_paths)
    # added last, so it runs first: an oversized body is refused before anything else
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=max_body_bytes,
        per_path=body_limits,
        error_forms=error_forms,
    )
    install_error_handlers(app)

    async def checks() -> dict[str, bool]:
        result: dict[str, bool] = await app.state.runtime.checks()
        return result

    app.include_router(health_router(checks))
    app.include_router(audit_router(staff_dependency(app_state_secret)))
    observe(app, settings.service_name)
    return app


# A service allocates a few thousand short-lived objects per event (ORM states, envelopes):
# the default first-generation threshold (700) ran a collection every few events. Once per
# process, when the first app has started, the modules, routes and mappers loaded so far are
# moved out of the collector's sight and the threshold raised. Once: a full collection per
# app start cost a test process that starts hundreds of apps a full sweep of its heap each.
GC_THRESHOLDS = (20_000, 20, 20)
_gc_tuned = False


def _with_tuned_gc(
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def tuned(app: FastAPI) -> AsyncIterator[None]:
        global _gc_tuned
        async with lifespan(app):
            if not _gc_tuned:
                _gc_tuned = True
                gc.collect()
                gc.freeze()
                gc.set_threshold(*GC_THRESHOLDS)
            yield

    return tuned


def observe(app: FastAPI, service: str) -> None:
    """/metrics (with the outbox and parked trail entry gauges of app.state.runtime, once
    running), the observability middleware, and tracing when configured. More samplers:
    app.state.metric_samplers."""
    from shared import metrics, tracing

    async def sample_delivery() -> None:
        rt = getattr(app.state, "runtime", None)
        if rt is not None:
            await metrics.sample_outbox(service, rt.sessions, rt.delivery.tables.outbox)
            if rt.delivery.tables.parked is not None:
                await metrics.sample_parked(
                    service, rt.sessions, rt.delivery.tables.parked, rt.delivery.gated
                )

    app.state.metric_samplers = [sample_delivery]
    tracing.configure(service)
    metrics.install(app, service, app.state.metric_samplers)


def staff_dependency(get_secret: Callable[[Request], tuple[str, str]]) -> Any:
    """A dependency returning the StaffPrincipal of a valid Bearer token, else 401.

    Valid: signed by the issuer's key, for this service's audience, at most an hour long, and
    its subject still active at the token's version (shared.staff_status)."""

    async def current_staff(request: Request) -> StaffPrincipal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("bearer token required")
        public_key, audience = get_secret(request)
        s = request.app.state.settings
        try:
            p = verify_token(public_key, audience, token.strip(), issuer=s.jwt_issuer)
        except AuthError as exc:
            raise Unauthenticated(str(exc)) from None
        runtime = getattr(request.app.state, "runtime", None)
        status = getattr(runtime, "staff_status", None)
        if status is not None and not await status.allows(p):
            raise Unauthenticated("token revoked: sign in again")
        return p

    return Depends(current_staff)


def app_state_secret(request: Request) -> tuple[str, str]:
    """Read the token issuer's public key and this service's audience from app.state.settings."""
    s = request.app.state.settings
    return s.jwt_public_key, s.jwt_audience


CurrentStaff = Annotated[StaffPrincipal, staff_dependency(app_state_secret)]
