"""HTTP edge helpers shared by the v1 and Open311 routes: keys, rate limit, bodies."""

from __future__ import annotations

import math
from typing import Annotated, NoReturn

from fastapi import Depends, Header, Request

from services.intake.handlers import IntakeHandlers
from services.intake.integrators import IntegratorGate
from services.intake.receipts import ReceiptWriter
from services.intake.repository import Integrator
from services.intake.settings import IntakeSettings
from shared.errors import (
    Forbidden,
    Invalid,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    UnsupportedMediaType,
)


def invalid(errors: list[dict[str, str]]) -> NoReturn:
    """Raise a 422 naming each field and reason."""
    raise Invalid(errors=errors)


async def authenticate(request: Request, api_key: str | None) -> Integrator:
    """401 without a known key; 429 with Retry-After when the key's bucket is empty."""
    gate: IntegratorGate = request.app.state.gate
    client = request.client.host if request.client else "unknown"
    wait = await gate.blocked(client)
    integ = await gate.authenticate(api_key) if wait == 0 else None
    if integ is None and wait == 0:
        wait = await gate.failed(client)  # failed keys are counted per client address
    if wait > 0:
        raise _too_many(wait)
    if integ is None:
        reason = "missing" if not api_key else "unknown or revoked key"
        raise Unauthenticated(
            "integrator API key required",
            [{"field": "X-API-Key", "reason": reason}],
            scheme="ApiKey",
        )
    wait = await gate.throttle(integ.id)
    if wait > 0:
        raise _too_many(wait)
    return integ


def _too_many(wait: float) -> RateLimited:
    return RateLimited(math.ceil(wait), "rate limit exceeded for this API key", field="X-API-Key")


async def current_integrator(
    request: Request,
    x_api_key: Annotated[
        str | None, Header(alias="X-API-Key", description="integrator API key")
    ] = None,
) -> Integrator:
    """The integrator calling, by its X-API-Key header."""
    return await authenticate(request, x_api_key)


CurrentIntegrator = Annotated[Integrator, Depends(current_integrator)]

# the X-API-Key parameter as the dependency above declares it, for the routes that read the
# header themselves (`calling_integrator`): the reports route is the hottest one, and FastAPI
# solving a sub-dependency with a header parameter costs more than the lookup itself
API_KEY_PARAMETER = {
    "name": "X-API-Key",
    "in": "header",
    "required": False,
    "schema": {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": "integrator API key",
        "title": "X-Api-Key",
    },
    "description": "integrator API key",
}


async def calling_integrator(request: Request) -> Integrator:
    """The integrator calling, by its X-API-Key header (as CurrentIntegrator, without Depends)."""
    return await authenticate(request, request.headers.get("x-api-key"))


def forbid_source(integ: Integrator, source: str, field: str = "source") -> None:
    """403 when a key bound to one source acts for another."""
    if source != integ.source:
        raise Forbidden(
            "this API key is bound to another source",
            [{"field": field, "reason": f"this key may act only for source {integ.source}"}],
        )


def require_content_type(request: Request, expected: str) -> None:
    """415 naming the header when the body is not of the expected media type."""
    base = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if base != expected:
        raise UnsupportedMediaType(expected)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or 413 when it is larger than the limit."""
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(limit)
    return raw


def settings_of(request: Request) -> IntakeSettings:
    """The app's settings."""
    s: IntakeSettings = request.app.state.settings
    return s


def handlers_of(request: Request) -> IntakeHandlers:
    """The app's handlers."""
    h: IntakeHandlers = request.app.state.handlers
    return h


def receipts_of(request: Request) -> ReceiptWriter:
    """The app's writer of HTTP reports (concurrent requests share a commit)."""
    w: ReceiptWriter = request.app.state.receipts
    return w
