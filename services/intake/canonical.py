"""The canonical report (DOMAIN.md §2) and its validation; errors never quote the input."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.contracts import Source
from shared.errors import field_path
from shared.topics import SOURCES

PHONE_OK = re.compile(r"^\+?[0-9][0-9 \-]{2,22}$")
ID_OK = re.compile(r"^(\d{15}|\d{17}[\dXx])$")
REF_OK = re.compile(r"^[^\x00-\x1f\x7f/\\]+$")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
SURROGATE = re.compile("[\ud800-\udfff]")  # a lone UTF-16 surrogate: not valid Unicode


class FieldError(Exception):
    """Input that cannot be accepted: a list of {field, reason}, never the input itself."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors))
        self.errors = errors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Location(_Strict):
    """Where the dispute is."""

    address: str | None = Field(default=None, max_length=500)
    grid_code: str | None = Field(default=None, max_length=64, pattern=r"^[0-9A-Za-z\-_.]+$")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class Person(_Strict):
    """The reporter or a party; every field is personal data."""

    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    id_number: str | None = Field(default=None, max_length=32)
    role: str | None = Field(default=None, max_length=40)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v and not PHONE_OK.match(v):
            raise ValueError("not a phone number (digits, spaces, dashes, optional +)")
        return v or None

    @field_validator("id_number")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v and not ID_OK.match(v):
            raise ValueError("not a resident ID number (15 digits, or 17 digits and a check digit)")
        return v.upper() if v else None


class Reporter(Person):
    """Who reported: a citizen, a grid worker or an officer."""

    role: Literal["citizen", "grid_worker", "officer"] | None = None


class CanonicalReport(_Strict):
    """What intake accepts from any source; only source, source_ref and text are required."""

    source: Source
    source_ref: str = Field(min_length=1, max_length=128)
    reported_at: datetime | None = None
    text: str = Field(min_length=1)
    category: str | None = Field(default=None, max_length=200)
    location: Location | None = None
    reporter: Reporter | None = None
    parties: list[Person] = Field(default_factory=list, max_length=50)

    @field_validator("source_ref")
    @classmethod
    def _ref(cls, v: str) -> str:
        if not REF_OK.match(v):
            raise ValueError("must not contain control characters, '/' or '\\'")
        return v

    @field_validator("reported_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("timestamp must carry a timezone offset, e.g. +08:00")
        if v < EARLIEST:
            raise ValueError("timestamp is before 2000")
        try:
            return v.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-08:00 is in year 10000 in UTC
            raise ValueError("timestamp is beyond the calendar in UTC") from None


def bad_characters(value: Any, path: str = "") -> list[dict[str, str]]:
    """Find NUL bytes and lone surrogates anywhere in parsed JSON (keys included)."""
    errors: list[dict[str, str]] = []

    def check(s: str, where: str) -> None:
        if "\x00" in s:
            errors.append({"field": where or "body", "reason": "contains a NUL character"})
        elif not s.isascii() and SURROGATE.search(s):  # one C scan, not a loop per character
            errors.append(
                {
                    "field": where or "body",
                    "reason": "contains a lone UTF-16 surrogate (not valid Unicode)",
                }
            )

    if isinstance(value, str):
        check(value, path)
    elif isinstance(value, dict):
        for k, v in value.items():
            key = field_path([k])
            sub = f"{path}.{key}" if path else key
            if isinstance(k, str):
                check(k, path or "body")
            errors.extend(bad_characters(v, sub))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            errors.extend(bad_characters(v, f"{path}.{i}" if path else str(i)))
    return errors


def parse_json(raw: bytes) -> Any:
    """Decode a JSON body; FieldError when it is not UTF-8 JSON."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise FieldError([{"field": "body", "reason": "not valid UTF-8"}]) from None
    except (json.JSONDecodeError, RecursionError):
        raise FieldError([{"field": "body", "reason": "not valid JSON"}]) from None


def field_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Pydantic errors as {field, reason}; pydantic's messages do not quote the input."""
    out = []
    for e in exc.errors(include_input=False, include_url=False):
        field = ".".join(p for p in (prefix, field_path(e["loc"])) if p) or "body"
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "field required"
        out.append({"field": field, "reason": msg})
    return out


def validate_report(
    data: Any, *, max_text_chars: int, max_future_skew_s: int, now: datetime, prefix: str = ""
) -> CanonicalReport:
    """Check parsed JSON against the canonical report; raise FieldError listing every problem."""
    errors = bad_characters(data, prefix)
    if errors:
        raise FieldError(errors)
    if not isinstance(data, dict):
        raise FieldError([{"field": prefix or "body", "reason": "must be a JSON object"}])
    if "source" in data and isinstance(data["source"], str) and data["source"] not in SOURCES:
        raise FieldError(
            [
                {
                    "field": _join(prefix, "source"),
                    "reason": f"unknown source; one of {', '.join(SOURCES)}",
                }
            ]
        )
    try:
        report = CanonicalReport.model_validate(data)
    except ValidationError as exc:
        raise FieldError(field_errors(exc, prefix)) from None
    problems = []
    if len(report.text) > max_text_chars:
        problems.append(
            {"field": _join(prefix, "text"), "reason": f"longer than {max_text_chars} characters"}
        )
    if report.reported_at and report.reported_at > now + timedelta(seconds=max_future_skew_s):
        problems.append({"field": _join(prefix, "reported_at"), "reason": "is in the future"})
    if problems:
        raise FieldError(problems)
    return report


def _join(prefix: str, field: str) -> str:
    return f"{prefix}.{field}" if prefix else field
