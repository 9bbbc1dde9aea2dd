"""Bad input gets a clear 4xx naming the field and reason, never a 500, never the input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.intake.conftest import Intake, report

SECRET_PHONE = "13955556666"


async def post_raw(
    intake: Intake, body: bytes, content_type: str | None = "application/json", source: str = "110"
) -> Any:
    headers = {"X-API-Key": intake.keys[source]}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await intake.client.post("/v1/reports", content=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "field", "reason_part"),
    [
        ({"source": "110", "source_ref": "X"}, "text", "field required"),
        ({"source": "110", "text": "t"}, "source_ref", "field required"),
        ({"source_ref": "X", "text": "t"}, "source", "field required"),
        ({"source": "999", "source_ref": "X", "text": "t"}, "source", "unknown source"),
        (
            {"source": "110", "source_ref": "X", "text": "t", "reported_at": "2026-11-20T08:15:00"},
            "reported_at",
            "timezone",
        ),
        (
            {"source": "110", "source_ref": "X", "text": "t", "reported_at": "yesterday"},
            "reported_at",
            "datetime",
        ),
        (
            {
                "source": "110",
                "source_ref": "X",
                "text": "t",
                "reported_at": "1970-01-01T00:00:00Z",
            },
            "reported_at",
            "before 2000",
        ),
        (
            {
                "source": "110",
                "source_ref": "X",
                "text": "t",
                "reported_at": "9999-12-31T23:00:00-08:00",
            },
            "reported_at",
            "beyond the calendar",
        ),
        ({"source": "110", "source_ref": "X", "text": "a\u0000b"}, "text", "NUL"),
        ({"source": "110", "source_ref": "X", "text": "x" * 2001}, "text", "longer than 2000"),
        ({"source": "110", "source_ref": "X", "text": "   "}, "text", "at least 1"),
        ({"source": "110", "source_ref": "a/b", "text": "t"}, "source_ref", "'/'"),
        (
            {
                "source": "110",
                "source_ref": "X",
                "text": "t",
                "parties": [{"phone": SECRET_PHONE + "x"}],
            },
            "parties.0.phone",
            "not a phone",
        ),
        (
            {
                "source": "110",
                "source_ref": "X",
                "text": "t",
                "parties": [{"id_number": "52273119800101"}],
            },
            "parties.0.id_number",
            "ID number",
        ),
        (
            {"source": "110", "source_ref": "X", "text": "t", "location": {"lat": 123}},
            "location.lat",
            "less than or equal",
        ),
        ({"source": "110", "source_ref": "X", "text": "t", "parties": "nobody"}, "parties", "list"),
        (["not", "an", "object"], "body", "JSON object"),
    ],
)
async def test_invalid_reports_name_field_and_reason(
    intake: Intake, body: Any, field: str, reason_part: str
) -> None:
    r = await post_raw(intake, json.dumps(body).encode())
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert any(e["field"] == field and reason_part in e["reason"] for e in errors), errors
    assert SECRET_PHONE not in r.text


async def test_future_timestamp_is_rejected(intake: Intake) -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    r = await intake.post(report(reported_at=future))
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "reported_at", "reason": "is in the future"}]


async def test_lone_surrogate_escape_is_rejected(intake: Intake) -> None:
    body = b'{"source": "110", "source_ref": "S-1", "text": "bad \\ud800 char"}'
    r = await post_raw(intake, body)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "text"
    assert "surrogate" in r.json()["errors"][0]["reason"]
    paired = b'{"source": "110", "source_ref": "S-2", "text": "ok \\ud83d\\ude00"}'
    assert (await post_raw(intake, paired)).status_code == 202


async def test_malformed_json_and_bad_utf8(intake: Intake) -> None:
    r = await post_raw(intake, b'{"source": "110", ')
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "body", "reason": "not valid JSON"}
    ]
    r = await post_raw(intake, b'{"text": "\xff\xfe"}')
    assert r.status_code == 422 and r.json()["errors"][0]["reason"] == "not valid UTF-8"


async def test_wrong_or_missing_content_type_is_415_naming_the_header(intake: Intake) -> None:
    for ct in ("text/plain", None, "application/x-www-form-urlencoded"):
        r = await post_raw(intake, json.dumps(report()).encode(), content_type=ct)
        assert r.status_code == 415
        assert r.json()["errors"] == [
            {"field": "Content-Type", "reason": "must be application/json"}
        ]
    ok = await post_raw(
        intake, json.dumps(report()).encode(), content_type="application/json; charset=utf-8"
    )
    assert ok.status_code == 202


async def test_oversized_body_is_413(intake: Intake) -> None:
    big = json.dumps(report(text="长" * 40_000)).encode()  # > 64 KiB single-report limit
    r = await post_raw(intake, big)
    assert r.status_code == 413
    assert r.json()["errors"][0]["field"] == "body"
    huge = b"x" * (17 * 1024 * 1024)  # > batch limit: refused by the middleware
    r = await intake.client.post(
        "/v1/reports:batch",
        content=huge,
        headers={"X-API-Key": intake.keys["grid"], "Content-Type": "application/json"},
    )
    assert r.status_code == 413


async def test_nothing_was_stored_from_bad_input(intake: Intake) -> None:
    await post_raw(intake, b'{"source": "110", "source_ref": "Z", "text": "a\\u0000"}')
    await intake.settle()
    assert intake.events(intake.topics.reports) == []
