"""Intake on PostgreSQL, where the duplicate race ends on a real unique-constraint violation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlmodel import func, select

from services.intake.repository import IntakeReport
from services.intake.settings import IntakeSettings
from tests.unit.intake.conftest import Intake, report, start_intake


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
    second = (await pg_intake.post(report("grid", "PG-3", parties=party))).json()
    assert second["merged"] and second["case_id"] == first["case_id"]
    async with pg_intake.app.state.runtime.sessions() as s:
        count = (await s.exec(select(func.count()).select_from(IntakeReport))).one()
    assert count == 3
    await pg_intake.settle()
    assert len(pg_intake.events(pg_intake.topics.reports, "report.received")) == 2
    assert len(pg_intake.events(pg_intake.topics.reports, "report.repeated")) == 1
