"""The error vocabulary of the four services: raise these anywhere (routes, actions, handlers
of a request); shared/web.py maps them to HTTP in one place.

Every error answers the same body, `ErrorBody`: `detail` says what went wrong, `errors` names
each field and its reason (empty when no field is to blame). A refused transition adds the
action asked for and the status the case is in. A case outside the caller's scope and a case
that does not exist raise the same `NotFound` and answer byte-identical bodies: a 404 never
tells a caller that something exists where they may not look.

Plain Python and pydantic only (no fastapi): domain modules may raise these too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field

# a key a client chose (an unknown field, a key of a free-form map) is named only when it looks
# like a field name: anything else could be the input itself (a name, a phone number)
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")
OTHER_KEY = "<key>"


def field_path(parts: Iterable[str | int]) -> str:
    """A dotted field path (`reports.2.text`) that never carries the client's input: list
    indexes and field-like keys as they are, any other key as `<key>`."""
    return ".".join(
        str(p) if isinstance(p, int) or _FIELD_NAME.fullmatch(p) else OTHER_KEY for p in parts
    )


class FieldProblem(BaseModel):
    """One field and why it was refused."""

    field: str = Field(description="the field, dotted for nested ones (reports.2.text)")
    reason: str


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer of the four services (Open311 keeps GeoReport's list)."""

    detail: str = Field(description="what went wrong, in one line")
    errors: list[FieldProblem] = Field(
        default_factory=list, description="each field to blame and why; empty when none is"
    )
    action: str | None = Field(default=None, description="409 only: the action refused")
    status: str | None = Field(default=None, description="409 only: the case's status now")


class ApiError(Exception):
    """An answer other than success; `status_code` is the HTTP status it maps to."""

    status_code: ClassVar[int] = 400
    default_detail: ClassVar[str] = "bad request"

    def __init__(
        self,
        detail: str | None = None,
        errors: Sequence[Mapping[str, str]] = (),
        *,
        headers: Mapping[str, str] | None = None,
        action: str | None = None,
        status: str | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.errors = [{"field": e["field"], "reason": e["reason"]} for e in errors]
        self.headers = dict(headers or {})
        self.action, self.status = action, status
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        """The JSON body (ErrorBody): detail and errors, plus action/status when set."""
        out: dict[str, Any] = {"detail": self.detail, "errors": self.errors}
        if self.action is not None:
            out["action"] = self.action
        if self.status is not None:
            out["status"] = self.status
        return out


class Invalid(ApiError):
    """422: the request names a field that is wrong; `errors` says which and why."""

    status_code = 422
    default_detail = "invalid request"

    @classmethod
    def field(cls, field: str, reason: str) -> Invalid:
        """One field refused."""
        return cls(errors=[{"field": field, "reason": reason}])


class Unauthenticated(ApiError):
    """401: no credentials, or ones that are not valid (says which scheme to use)."""

    status_code = 401
    default_detail = "authentication required"

    def __init__(
        self,
        detail: str | None = None,
        errors: Sequence[Mapping[str, str]] = (),
        *,
        scheme: str = "Bearer",
    ) -> None:
        super().__init__(detail, errors, headers={"WWW-Authenticate": scheme})


class Forbidden(ApiError):
    """403: the caller sees the thing but their role may not do this to it."""

    status_code = 403
    default_detail = "not allowed"


class NotFound(ApiError):
    """404: no such thing, or none the caller may see (the same answer, byte for byte)."""

    status_code = 404
    default_detail = "not found"

    def __init__(self, what: str = "case", field: str = "case_id") -> None:
        super().__init__(errors=[{"field": field, "reason": f"no such {what}"}])


class OutOfScope(NotFound):
    """404 for a thing outside the caller's scope: the very body of NotFound, so a caller
    cannot tell a hidden case from a missing one (DOMAIN.md §7)."""


class Conflict(ApiError):
    """409: the request clashes with the thing's state (already done, changed meanwhile)."""

    status_code = 409
    default_detail = "conflict"


class TransitionRefused(Conflict):
    """409: the case's life cycle does not allow this action in its current status."""

    def __init__(self, action: str, status: str, reason: str) -> None:
        super().__init__(reason, action=action, status=status)
        self.reason = reason


class PayloadTooLarge(ApiError):
    """413: the body is larger than the route accepts."""

    status_code = 413
    default_detail = "request body too large"

    def __init__(self, limit: int) -> None:
        super().__init__(errors=[{"field": "body", "reason": f"larger than {limit} bytes"}])


class UnsupportedMediaType(ApiError):
    """415: the body is not of the media type the route reads."""

    status_code = 415
    default_detail = "unsupported media type"

    def __init__(self, expected: str) -> None:
        super().__init__(errors=[{"field": "Content-Type", "reason": f"must be {expected}"}])


class RateLimited(ApiError):
    """429: too many requests; Retry-After says how many seconds to wait."""

    status_code = 429
    default_detail = "rate limit exceeded"

    def __init__(
        self, retry_after_s: int, detail: str | None = None, field: str = "request"
    ) -> None:
        super().__init__(
            detail,
            [{"field": field, "reason": "too many requests"}],
            headers={"Retry-After": str(max(1, retry_after_s))},
        )


class Unavailable(ApiError):
    """503: something the answer needs is not there now (a key, the database); retry later."""

    status_code = 503
    default_detail = "temporarily unavailable"


ERROR_STATUSES: tuple[type[ApiError], ...] = (
    Invalid,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    Unavailable,
)
