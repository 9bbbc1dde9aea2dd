"""Status back to the source: feedback topics keyed by source_ref, signed webhooks with retry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from services.intake.domain import backoff_s, verify_webhook
from services.intake.integrators import create_integrator
from services.intake.repository import IntakeCase, WebhookDelivery
from shared.bus import OutgoingMessage
from tests.unit.intake.conftest import (
    Intake,
    make_settings,
    report,
    start_intake,
    trail_batch_on_twelve_cases,
)


def feedback(intake: Intake, source: str) -> list[tuple[str, dict]]:
    return [
        (m.key.decode() if m.key else "", json.loads(m.value))
        for m in intake.bus.log[intake.topics.feedback(source)]
    ]


async def test_every_status_change_reaches_each_reporting_source(intake: Intake) -> None:
    party = [{"name": "钱七", "phone": "13600003333"}]
    a = (await intake.post(report("110", "F-1", parties=party))).json()
    await intake.post(report("110", "F-2", parties=party))  # merged into a (same sender)
    await intake.settle()
    await intake.publish_trail(
        a["case_id"],
        "received",
        "triaged",
        details={"dispute_type": "neighbour", "channel": "people"},
    )
    await intake.settle()
    await intake.publish_trail(a["case_id"], "triaged", "assigned", actor="system:mediation")
    await intake.settle()
    f1 = [(k, b) for k, b in feedback(intake, "110") if k == "F-1"]
    assert [b["status"] for _, b in f1] == ["received", "triaged", "assigned"]
    f2 = [(k, b) for k, b in feedback(intake, "110") if k == "F-2"]
    assert [(b["status"], b["action"]) for _, b in f2] == [
        ("received", "merge"),
        ("triaged", "test"),
        ("assigned", "test"),
    ]
    assert all(b["case_id"] == a["case_id"] for _, b in f1 + f2)
    assert f2[0][1]["merged"] is True and f1[0][1]["merged"] is False
    status = await intake.client.get(
        "/v1/reports/110/F-1", headers={"X-API-Key": intake.keys["110"]}
    )
    assert status.json()["status"] == "assigned"
    assert status.json()["dispute_type"] == "neighbour"


async def test_redelivered_trail_event_sends_feedback_once(intake: Intake) -> None:
    a = (await intake.post(report("grid", "G-1"))).json()
    await intake.settle()
    trail = intake.bus.log[intake.topics.trail]
    resend = OutgoingMessage(intake.topics.trail, a["case_id"], trail[0].value)
    await intake.bus.publish([resend])
    await intake.settle()
    assert [b["status"] for _, b in feedback(intake, "grid")] == ["received"]


class Receiver:
    """A source system's webhook endpoint: fails `failures` times, then acknowledges."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) <= self.failures:
            return httpx.Response(503)
        return httpx.Response(204)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(failures=2)


@pytest.fixture
async def hooked(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Intake]:
    settings = make_settings(tmp_path, webhook_backoff_base_s=0.01)
    async for h in start_intake(settings, webhook_transport=httpx.MockTransport(receiver)):
        yield h


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll an outcome (the sender runs in the background); nothing about time is asserted."""
    for _ in range(int(timeout / 0.02)):
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_webhook_is_signed_and_retried_until_acknowledged(
    hooked: Intake, receiver: Receiver
) -> None:
    hd = hooked.app.state.handlers
    integ = await create_integrator(
        hd.delivery.sessions,
        hd.cipher,
        name="CRM",
        source="12345",
        callback_url="http://crm.test/fengqiao/status",
        webhook_secret="s3cret-s3cret-s3cret",
    )
    r = await hooked.post(report("12345", "WH-1"), key=integ.api_key)
    assert r.status_code == 202
    await hooked.settle()

    async def delivered() -> bool:
        async with hooked.app.state.runtime.sessions() as s:
            rows = (await s.exec(select(WebhookDelivery))).all()
        return bool(rows) and all(x.delivered_at is not None for x in rows)

    await wait_for(delivered)
    assert len(receiver.requests) == 3  # two 503s, then 204
    for req in receiver.requests:
        assert str(req.url) == "http://crm.test/fengqiao/status"
        ts = req.headers["X-Fengqiao-Timestamp"]
        assert verify_webhook(
            "s3cret-s3cret-s3cret", ts, req.content, req.headers["X-Fengqiao-Signature"]
        )
        assert not verify_webhook(
            "wrong-secret", ts, req.content, req.headers["X-Fengqiao-Signature"]
        )
        body = json.loads(req.content)
        assert body["source_ref"] == "WH-1" and body["status"] == "received"
        assert body["case_id"] == r.json()["case_id"]
    async with hooked.app.state.runtime.sessions() as s:
        [row] = (await s.exec(select(WebhookDelivery))).all()
    assert row.attempts == 3 and row.last_status == 204


@pytest.fixture
async def never_acked(tmp_path: Path) -> AsyncIterator[Intake]:
    settings = make_settings(tmp_path, webhook_backoff_base_s=600, webhook_backoff_max_s=3600)
    async for h in start_intake(
        settings, webhook_transport=httpx.MockTransport(lambda req: httpx.Response(500))
    ):
        yield h


async def test_failed_webhook_is_rescheduled_with_backoff(never_acked: Intake) -> None:
    hd = never_acked.app.state.handlers
    integ = await create_integrator(
        hd.delivery.sessions,
        hd.cipher,
        name="CRM",
        source="grid",
        callback_url="http://grid.test/cb",
    )
    await never_acked.post(report("grid", "WH-2"), key=integ.api_key)
    await never_acked.settle()

    async def tried() -> bool:
        async with never_acked.app.state.runtime.sessions() as s:
            rows = (await s.exec(select(WebhookDelivery))).all()
        return bool(rows) and rows[0].attempts >= 1

    await wait_for(tried)
    async with never_acked.app.state.runtime.sessions() as s:
        [row] = (await s.exec(select(WebhookDelivery))).all()
    assert row.delivered_at is None and row.attempts == 1 and row.last_status == 500
    assert (row.next_attempt_at - row.created_at).total_seconds() >= 590  # base 600 s


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n, 2, 60) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


async def test_a_batch_of_trail_entries_updates_its_cases_together(intake: Intake) -> None:
    """A partition batch's status changes reach every case, written by one UPDATE per set of
    changed columns at commit (not a statement, nor an ORM row, per event); the repeat count a
    merge wrote is kept."""
    details = {"dispute_type": "neighbour", "channel": "people", "tier": "grid"}
    ids, statements = await trail_batch_on_twelve_cases(intake, "B", details)
    assert 1 <= len(statements) <= 2  # two sets of changed columns
    async with intake.app.state.runtime.sessions() as session:
        rows = {
            r.case_id: r
            for r in (await session.exec(select(IntakeCase))).all()
            if r.case_id in set(ids)
        }
    assert {r.status for r in rows.values()} == {"triaged"}
    assert {r.dispute_type for r in rows.values()} == {"neighbour"}
    assert [rows[c].organisation_id for c in ids] == [
        f"org-{n}" if n % 2 else None for n in range(len(ids))
    ]
    assert rows[ids[0]].repeat_count == 2  # the merge's count is not written over
    fb = [b for _, b in feedback(intake, "grid") if b["action"] == "test"]
    assert sorted(b["source_ref"] for b in fb) == sorted(
        [f"B-{i}" for i in range(12)] + ["B-merged"]
    )
