"""A consumer batch writes one `events handled` line once committed (the events it handled:
their types, ids and cases); an event handled alone (the one-by-one replay) keeps its own
`event handled` line; a batch that fails writes none."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from services.followup.main import MIGRATIONS
from services.followup.repository import TABLES
from services.followup.settings import FollowupSettings
from shared.bus import InMemoryBus, Message
from shared.contracts import TrailAppended
from shared.db import migrate
from shared.events import Envelope
from shared.logs import RedactingJsonFormatter
from shared.runtime import Runtime

SETTINGS = FollowupSettings(bus="memory", database_url="sqlite+aiosqlite://", dev_mode=True)


def _entry(case_id: str, action: str = "received", correlation_id: str = "c-1") -> Envelope:
    payload = TrailAppended(
        case_id=case_id,
        at=datetime.now(UTC),
        actor="system:intake",
        action=action,
        to_status=action,
    )
    return Envelope(
        event_type="trail.appended",
        producer="intake",
        case_id=case_id,
        correlation_id=correlation_id,
        payload=payload.model_dump(mode="json"),
    )


def _other(case_id: str) -> Envelope:  # a known event type this group has no handler for
    return Envelope(
        event_type="case.closed",
        producer="mediation",
        case_id=case_id,
        correlation_id="c-2",
        payload={},
    )


def _msg(env: Envelope, offset: int) -> Message:
    return Message("t", 0, offset, env.case_id.encode(), env.to_bytes(), [])


async def _runtime(fail_on: str | None = None) -> tuple[Runtime, Any, list[str]]:
    rt = Runtime(SETTINGS, TABLES, MIGRATIONS, bus=InMemoryBus())
    await migrate(rt.engine, MIGRATIONS)
    seen: list[str] = []

    async def handler(env: Envelope, payload: Any) -> None:
        assert isinstance(payload, TrailAppended)
        if env.case_id == fail_on:
            raise RuntimeError("poison")
        seen.append(env.event_id)

    rt.on_events(["t"], "ledger", {"trail.appended": handler})
    return rt, rt.bus._subs[-1], seen  # type: ignore[attr-defined]


def _json(record: logging.LogRecord) -> dict[str, Any]:
    """The line as the service writes it (the formatter adds the context's ids)."""
    out: dict[str, Any] = json.loads(RedactingJsonFormatter().format(record))
    return out


def _lines(caplog: pytest.LogCaptureFixture, msg: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fengqiao.runtime" and r.msg == msg]


async def test_a_batch_writes_one_line_naming_the_events_it_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rt, sub, seen = await _runtime()
    envs = [_entry("case-a"), _other("case-b"), _entry("case-c"), _entry("case-a", "triaged")]
    caplog.set_level(logging.INFO, logger="fengqiao.runtime")
    try:
        await sub.batch_handler([_msg(e, i) for i, e in enumerate(envs)])
    finally:
        await rt.engine.dispose()
    handled = [envs[0].event_id, envs[2].event_id, envs[3].event_id]
    assert seen == handled
    [line] = _lines(caplog, "events handled")
    fields: dict[str, Any] = vars(line)
    assert fields["events"] == 3 and fields["group"] == "ledger"
    assert fields["event_types"] == {"trail.appended": 3}
    assert fields["event_ids"] == handled
    assert fields["case_ids"] == ["case-a", "case-c"]
    assert _json(line)["correlation_id"] == "c-1"  # the events it handled share one report
    assert _lines(caplog, "event handled") == []


async def test_a_batch_of_one_report_carries_its_case_and_correlation_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A report's lines are found by its ids at any rate: a batch of one case's events writes
    them as the fields every other line uses; a batch of several reports lists them."""
    rt, sub, _ = await _runtime()
    one = [_entry("case-a", "received", "c-1"), _entry("case-a", "triaged", "c-1")]
    two = [_entry("case-a", "assigned", "c-1"), _entry("case-b", "received", "c-9")]
    caplog.set_level(logging.INFO, logger="fengqiao.runtime")
    try:
        await sub.batch_handler([_msg(e, i) for i, e in enumerate(one)])
        await sub.batch_handler([_msg(e, i + 2) for i, e in enumerate(two)])
    finally:
        await rt.engine.dispose()
    first, second = (_json(r) for r in _lines(caplog, "events handled"))
    assert (first["case_id"], first["correlation_id"], first["events"]) == ("case-a", "c-1", 2)
    assert "case_ids" not in first and "correlation_ids" not in first
    assert second["case_ids"] == ["case-a", "case-b"]
    assert second["correlation_ids"] == ["c-1", "c-9"]
    assert "case_id" not in second


async def test_an_event_handled_alone_keeps_its_own_line(caplog: pytest.LogCaptureFixture) -> None:
    rt, sub, seen = await _runtime()
    env = _entry("case-a")
    caplog.set_level(logging.INFO, logger="fengqiao.runtime")
    try:
        await sub.handler(_msg(env, 0))
        await sub.handler(_msg(_other("case-b"), 1))
    finally:
        await rt.engine.dispose()
    assert seen == [env.event_id]
    [line] = _lines(caplog, "event handled")
    assert (vars(line)["event_id"], vars(line)["case_id"]) == (env.event_id, "case-a")
    assert _lines(caplog, "events handled") == []


async def test_a_failed_batch_writes_no_line(caplog: pytest.LogCaptureFixture) -> None:
    rt, sub, _ = await _runtime(fail_on="case-c")
    caplog.set_level(logging.INFO, logger="fengqiao.runtime")
    try:
        with pytest.raises(RuntimeError):
            await sub.batch_handler([_msg(_entry("case-a"), 0), _msg(_entry("case-c"), 1)])
    finally:
        await rt.engine.dispose()
    assert _lines(caplog, "events handled") == [] and _lines(caplog, "event handled") == []
