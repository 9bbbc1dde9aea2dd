"""PostgreSQL where the code paths differ from SQLite: migrations, row locking, inbox races."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.bus import InMemoryBus
from shared.contracts import CaseClosed
from shared.db import Delivery, OutboxRelay, Tx, make_engine, migrate
from shared.events import Envelope
from tests.conftest import REPO

SERVICES = sorted(p.parent.parent.name for p in (REPO / "services").glob("*/migrations/env.py"))


@pytest.mark.parametrize("service", SERVICES)
async def test_each_service_history_migrates_an_empty_postgres_database(
    service: str, pg_url: str
) -> None:
    engine = make_engine(pg_url)
    try:
        await migrate(engine, REPO / "services" / service / "migrations")
        await migrate(engine, REPO / "services" / service / "migrations")  # idempotent
        async with engine.connect() as conn:
            tables = set(
                await conn.run_sync(lambda c: __import__("sqlalchemy").inspect(c).get_table_names())
            )
    finally:
        await engine.dispose()
    assert {"outbox", "inbox", "trail", "alembic_version"} <= tables


async def _triage_delivery(pg_url: str) -> tuple[Delivery, object]:
    from services.triage.repository import TABLES

    engine = make_engine(pg_url)
    await migrate(engine, Path(REPO / "services" / "triage" / "migrations"))
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    return Delivery(sessions, TABLES, "pgtest", "pg.trail"), engine


async def test_two_relays_on_one_outbox_publish_each_row_exactly_once(pg_url: str) -> None:
    delivery, engine = await _triage_delivery(pg_url)
    try:
        for i in range(200):
            async with delivery.transaction() as tx:
                tx.emit("pg.out", "case.closed", CaseClosed(case_id=f"c{i}", outcome="ok"), f"c{i}")
        bus = InMemoryBus()
        relays = [OutboxRelay(delivery, bus, batch=20), OutboxRelay(delivery, bus, batch=20)]

        async def drain(r: OutboxRelay) -> None:
            # yield between batches so the two relays interleave on the same rows
            while await r.publish_pending():  # noqa: ASYNC110
                await asyncio.sleep(0)

        await asyncio.gather(*(drain(r) for r in relays))
        ids = [Envelope.from_bytes(m.value).case_id for m in bus.log["pg.out"]]
        assert len(ids) == 200 and len(set(ids)) == 200  # FOR UPDATE SKIP LOCKED
    finally:
        await engine.dispose()  # type: ignore[attr-defined]


async def test_concurrent_deliveries_of_one_event_are_processed_once(pg_url: str) -> None:
    delivery, engine = await _triage_delivery(pg_url)
    env = Envelope(
        event_type="case.closed",
        producer="x",
        case_id="c",
        correlation_id="k",
        payload={"case_id": "c", "outcome": "ok"},
    )

    async def work(tx: Tx) -> None:
        await asyncio.sleep(0.05)  # widen the race window
        tx.transition(
            "c", action="fail", from_status="follow_up", to_status="closed", actor="system:test"
        )

    try:
        results = await asyncio.gather(*(delivery.handle_once("svc", env, work) for _ in range(5)))
        async with delivery.sessions() as s:
            trail = (await s.exec(select(delivery.tables.trail))).all()
    finally:
        await engine.dispose()  # type: ignore[attr-defined]
    assert sorted(results) == [False, False, False, False, True]
    assert len(trail) == 1
