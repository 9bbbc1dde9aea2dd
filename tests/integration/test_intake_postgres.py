"""Intake on PostgreSQL, where the duplicate race ends on a real unique-constraint violation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.integrators import create_integrator
from services.intake.repository import IntakeCase, IntakeReport, WebhookDelivery
from services.intake.settings import IntakeSettings
from services.intake.webhooks import WebhookSender
from shared.db import make_engine
from shared.events import utcnow
from tests.unit.intake.conftest import (
    Intake,
    public_resolver,
    report,
    start_intake,
    trail_batch_on_twelve_cases,
)


@pytest.fixture
async def pg_intake(pg_url: str) -> AsyncIterator[Intake]:
    settings = IntakeSettings(
        bus="memory",
        database_url=pg_url,
        relay_interval_s=0.05,
        webhook_poll_s=0.05,
        rate_limit_per_s=1000.0,
        rate_limit_burst=1000,
    )
    async for h in start_intake(settings):
        yield h


async def test_concurrent_duplicates_and_merges_on_postgres(pg_intake: Intake) -> None:
    answers = await asyncio.gather(*[pg_intake.post(report(ref="PG-1")) for _ in range(20)])
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["case_id"] for a in answers}) == 1
    party = [{"name": "孙八", "phone": "13100004444"}]
    first = (await pg_intake.post(report("110", "PG-2", parties=party))).json()
    # one sender: 并单 (another sender's report would be a new case, see test_merge_oracle)
    second = (await pg_intake.post(report("110", "PG-3", parties=party))).json()
    assert second["merged"] and second["case_id"] == first["case_id"]
    async with pg_intake.app.state.runtime.sessions() as s:
        count = (await s.exec(select(func.count()).select_from(IntakeReport))).one()
    assert count == 3
    await pg_intake.settle()
    assert len(pg_intake.events(pg_intake.topics.reports, "report.received")) == 2
    assert len(pg_intake.events(pg_intake.topics.reports, "report.repeated")) == 1


@pytest.fixture
async def quiet_pg_intake(pg_url: str) -> AsyncIterator[Intake]:
    """Intake on PostgreSQL whose own webhook loop stays asleep (the test drives senders)."""
    settings = IntakeSettings(
        bus="memory",
        database_url=pg_url,
        relay_interval_s=0.05,
        webhook_poll_s=3600,
        webhook_batch=5,
        rate_limit_per_s=1000.0,
        rate_limit_burst=1000,
    )
    async for h in start_intake(settings):
        yield h


async def test_two_senders_on_one_database_send_each_due_webhook_once(
    quiet_pg_intake: Intake, pg_url: str
) -> None:
    h = quiet_pg_intake
    rt = h.app.state.runtime
    # The app's own sender makes one pass when its loop first runs, which on a busy machine
    # can be after the rows below exist: it would claim a batch that neither test sender sees.
    # This test drives the senders itself, so that loop stops first.
    await h.app.state.webhooks.stop()
    integ = await create_integrator(
        rt.sessions, rt.cipher, name="CRM", source="grid", callback_url="http://grid.test/cb"
    )
    now = utcnow()
    async with rt.sessions() as s, s.begin():
        for i in range(40):
            s.add(
                WebhookDelivery(
                    integrator_id=integ.id,
                    case_id=f"C-{i}",
                    body=b'{"n": %d}' % i,
                    next_attempt_at=now - timedelta(seconds=1),
                    created_at=now,
                )
            )
    async with rt.sessions() as s:
        ids = sorted(r.id for r in (await s.exec(select(WebhookDelivery))).all())

    sent: dict[str, list[int]] = {"a": [], "b": []}

    def transport(name: str) -> httpx.MockTransport:
        async def receive(req: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.005)  # let the other sender run while this one is sending
            sent[name].append(int(req.headers["X-Fengqiao-Delivery"]))
            return httpx.Response(204)

        return httpx.MockTransport(receive)

    engines = [make_engine(pg_url), make_engine(pg_url)]
    senders = [
        WebhookSender(
            async_sessionmaker(e, class_=AsyncSession, expire_on_commit=False),
            rt.cipher,
            h.app.state.settings,
            asyncio.Event(),
            transport=transport(name),
            resolver=public_resolver,
        )
        for e, name in zip(engines, "ab", strict=True)
    ]
    try:
        for _ in range(40):
            acked = await asyncio.gather(*[s.send_due() for s in senders])
            if sum(acked) == 0:
                break
    finally:
        for sender in senders:
            await sender.stop()
        for e in engines:
            await e.dispose()

    everything = sent["a"] + sent["b"]
    assert sorted(everything) == ids  # every delivery sent, none twice
    assert sent["a"] and sent["b"]  # both senders took part
    async with rt.sessions() as s:
        rows = (await s.exec(select(WebhookDelivery))).all()
    assert all(r.delivered_at is not None and r.attempts == 1 for r in rows)
    assert {r.last_status for r in rows} == {204}


async def test_a_trail_batch_updates_its_cases_on_postgres(pg_intake: Intake) -> None:
    """The feedback consumer's batch writes its cases' changed columns just before the commit
    (Batch.before_commit): on asyncpg too, every case gets its status and scope, a merge's
    repeat count is kept, every report hears of it."""
    h = pg_intake
    details = {"dispute_type": "labour", "channel": "labour", "tier": "town"}
    ids, updates = await trail_batch_on_twelve_cases(h, "PB", details)
    assert 1 <= len(updates) <= 2  # one executemany per set of changed columns
    async with h.app.state.runtime.sessions() as s:
        rows = {r.case_id: r for r in (await s.exec(select(IntakeCase))).all()}
    assert [(rows[c].status, rows[c].dispute_type, rows[c].tier) for c in ids] == [
        ("triaged", "labour", "town")
    ] * len(ids)
    assert [rows[c].organisation_id for c in ids] == [
        f"org-{n}" if n % 2 else None for n in range(len(ids))
    ]
    assert rows[ids[0]].repeat_count == 2
    told = [
        json.loads(m.value)["source_ref"]
        for m in h.bus.log[h.topics.feedback("grid")]
        if json.loads(m.value)["status"] == "triaged"
    ]
    assert sorted(told) == sorted([f"PB-{i}" for i in range(12)] + ["PB-merged"])
