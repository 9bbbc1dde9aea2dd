"""Inbox retention on SQLite and PostgreSQL: rows handled before the retention go, in chunks,
for every consumer; recent rows and old-looking random ids handled recently stay."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.triage.repository import TABLES
from shared import db, metrics
from shared.contracts import CaseClosed
from shared.db import Delivery, make_engine, migrate
from shared.events import Envelope, utcnow
from shared.inbox_retention import InboxPruner, id_floor
from tests.conftest import REPO

NOW = utcnow()
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=1)


def v7_at(at: datetime) -> str:
    """A UUID v7 hex made at `at` (what shared.events.new_event_id makes then)."""
    b = bytearray(bytes.fromhex(id_floor(at)[:12]) + os.urandom(10))
    b[6] = (b[6] & 0x0F) | 0x70
    b[8] = (b[8] & 0x3F) | 0x80
    return b.hex()


@pytest.fixture(params=["sqlite", "postgresql"])
async def delivery(request: Any, tmp_path: Path) -> AsyncIterator[Delivery]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'triage.db'}"
    if request.param == "postgresql":  # a fresh database on the project's server
        import asyncpg

        server: str = request.getfixturevalue("pg_server")
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(server.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        url = server.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    await migrate(engine, REPO / "services" / "triage" / "migrations")
    yield Delivery(
        async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False),
        TABLES,
        "triage",
        "t.trail",
    )
    await engine.dispose()


async def handled(
    delivery: Delivery, monkeypatch: Any, consumer: str, event_id: str, at: datetime
) -> bool:
    """Hand an event to `consumer` through the inbox as it would have been at `at`."""
    env = Envelope(
        event_id=event_id,
        event_type="case.closed",
        producer="mediation",
        case_id="c1",
        correlation_id="r1",
        payload=CaseClosed(case_id="c1", outcome="ok").model_dump(mode="json"),
    )
    monkeypatch.setattr(db, "utcnow", lambda: at)

    async def nothing(tx: Any) -> None:
        return None

    try:
        return await delivery.handle_once(consumer, env, nothing)
    finally:
        monkeypatch.setattr(db, "utcnow", utcnow)


async def test_old_rows_go_in_chunks_and_the_rest_stay(
    delivery: Delivery, monkeypatch: Any
) -> None:
    old_a = [v7_at(OLD) for _ in range(5)]
    old_b = [v7_at(OLD) for _ in range(3)]
    recent = v7_at(RECENT)
    random_low_recent = "0" * 12 + "4" + os.urandom(10).hex()[:19]  # a v4 id that sorts low
    random_low_old = "0" * 11 + "1" + "4" + os.urandom(10).hex()[:19]
    rows = [
        *(("a", e, OLD) for e in old_a),
        ("a", recent, RECENT),
        *(("b", e, OLD) for e in old_b),
        ("b", random_low_recent, RECENT),
        ("b", random_low_old, OLD),
    ]
    for consumer, event_id, at in rows:
        assert await handled(delivery, monkeypatch, consumer, event_id, at)

    engine = delivery.sessions.kw["bind"]
    pruner = InboxPruner(engine, TABLES.inbox, "triage", timedelta(days=30), chunk=2)
    counted = metrics.INBOX_PRUNED.labels("triage")._value.get()
    assert await pruner.prune_once(NOW) == 5 + 3 + 1
    assert metrics.INBOX_PRUNED.labels("triage")._value.get() - counted == 9

    async with delivery.sessions() as s:
        left = {(r.consumer, r.event_id) for r in (await s.exec(select(TABLES.inbox))).all()}
    assert left == {("a", recent), ("b", random_low_recent)}
    # what is still remembered is still skipped; nothing else is left to prune
    assert not await handled(delivery, monkeypatch, "a", recent, NOW)
    assert await pruner.prune_once(NOW) == 0


def test_the_id_floor_sorts_between_ids_made_before_and_after() -> None:
    at = NOW - timedelta(days=30)
    floor = id_floor(at)
    assert v7_at(at - timedelta(milliseconds=1)) < floor <= v7_at(at) < v7_at(NOW)
