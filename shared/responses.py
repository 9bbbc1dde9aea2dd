"""Building blocks of the services' response models (services/*/schemas.py).

Every JSON route declares its body as a `Body` model, so the OpenAPI documents it. A `Body`
answers exactly the keys its route's code wrote (a key the code leaves out stays out; it is not
added as null), and times keep the form they have always had on the wire (`isoformat()`,
`+00:00`). Under the tests (FENGQIAO_STRICT_BODIES=1, set by tests/conftest.py) a key the code
writes and the model does not declare fails the request, so the models stay true.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
)

STRICT = os.environ.get("FENGQIAO_STRICT_BODIES") == "1"


def _iso(when: datetime) -> str:
    return when.isoformat()


# a time as the services have always written it: datetime.isoformat()
Timestamp = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


NUL_REASON = "contains a NUL character"


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError(NUL_REASON)
    return text


# request text stored as it comes (the trail, lookups, reviews): PostgreSQL text holds no NUL,
# so one is a 422 naming the field, not a 500 in the database (sealed text may hold one)
StoredText = Annotated[str, AfterValidator(_no_nul)]


class Body(BaseModel):
    """A response body: the declared fields, exactly those the route's code wrote."""

    model_config = ConfigDict(extra="forbid" if STRICT else "ignore")

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        written = self.model_fields_set | set(self.model_extra or {})
        return {k: v for k, v in data.items() if k in written}


class StoredBody(Body):
    """A stored document shown as stored (a person, a location, a decision): the documented
    fields, and whatever else the stored form holds."""

    model_config = ConfigDict(extra="allow")


class Health(Body):
    """GET /healthz: the process answers."""

    status: str = Field(examples=["ok"])


class Readiness(Body):
    """GET /readyz: 200 when every dependency answers, else 503 with the same body."""

    status: str = Field(examples=["ready", "not ready"])
    checks: dict[str, bool] = Field(description="each dependency (database, broker …) and OK")


class AuditEntry(Body):
    """One clear read of a case's personal data."""

    at: Timestamp
    subject: str
    role: str
    case_id: str
    fields: list[str]
    route: str


class AuditPage(Body):
    """GET /v1/admin/audit: clear reads, newest first."""

    items: list[AuditEntry]
