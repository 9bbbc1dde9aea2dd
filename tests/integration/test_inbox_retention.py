"""Inbox retention on SQLite and PostgreSQL: rows handled before the retention go, in chunks,
for every consumer; recent rows and random (pre-v7) ids stay; the causal gate takes a cause
made before the retention as applied, unless it is parked."""

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
from shared.db import CausalGate, Delivery, Tx, make_engine, migrate
from shared.events import Envelope, event_id_floor, made_before, new_event_id, utcnow
from shared.inbox_retention import InboxPruner
from tests.causal import note_entry as entry
from tests.conftest import REPO

NOW = utcnow()
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=1)


def v7_at(at: datetime) -> str:
    """A UUID v7 hex made at `at` (what shared.events.new_event_id makes then)."""
    b = bytearray(bytes.fromhex(event_id_floor(at)[:12]) + os.urandom(10))
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
    old_handled_lately = v7_at(OLD)  # made long ago, handled yesterday (a late record)
    random_low_recent = "0" * 12 + "4" + os.urandom(10).hex()[:19]  # a v4 id that sorts low
    random_low_old = "0" * 11 + "1" + "4" + os.urandom(10).hex()[:19]  # tells no time: kept
    rows = [
        *(("a", e, OLD) for e in old_a),
        ("a", recent, RECENT),
        ("a", old_handled_lately, RECENT),
        *(("b", e, OLD) for e in old_b),
        ("b", random_low_recent, RECENT),
        ("b", random_low_old, OLD),
    ]
    for consumer, event_id, at in rows:
        assert await handled(delivery, monkeypatch, consumer, event_id, at)

    engine = delivery.sessions.kw["bind"]
    pruner = InboxPruner(engine, TABLES.inbox, "triage", timedelta(days=30), chunk=2)
    counted = metrics.INBOX_PRUNED.labels("triage")._value.get()
    assert await pruner.prune_once(NOW) == 5 + 3
    assert metrics.INBOX_PRUNED.labels("triage")._value.get() - counted == 8

    async with delivery.sessions() as s:
        left = {(r.consumer, r.event_id) for r in (await s.exec(select(TABLES.inbox))).all()}
    assert left == {
        ("a", recent),
        ("a", old_handled_lately),
        ("b", random_low_recent),
        ("b", random_low_old),
    }
    # what is still remembered is still skipped; nothing else is left to prune
    assert not await handled(delivery, monkeypatch, "a", recent, NOW)
    assert await pruner.prune_once(NOW) == 0


def test_the_id_floor_sorts_between_ids_made_before_and_after() -> None:
    at = NOW - timedelta(days=30)
    floor = event_id_floor(at)
    assert v7_at(at - timedelta(milliseconds=1)) < floor <= v7_at(at) < v7_at(NOW)
    assert made_before(v7_at(at - timedelta(milliseconds=1)), floor)
    assert not made_before(v7_at(at), floor)
    assert not made_before("0" * 12 + "4" + "0" * 19, floor)  # a v4 id tells no time


async def gate_applies(
    gate: CausalGate, env: Envelope, payload: Any, at: datetime, monkeypatch: Any, batch: bool
) -> list[str]:
    """Hand an entry to the gate at `at` (alone, or in a partition batch); the ids applied."""
    applied: list[str] = []

    async def apply(tx: Tx, e: Envelope, _entry: Any) -> None:
        applied.append(e.event_id)

    monkeypatch.setattr(db, "utcnow", lambda: at)
    try:
        if batch:
            async with gate.delivery.batch([env]):
                await gate.handle(env, payload, apply)
        else:
            await gate.handle(env, payload, apply)
    finally:
        monkeypatch.setattr(db, "utcnow", utcnow)
    return applied


@pytest.mark.parametrize("batch", [False, True], ids=["alone", "batch"])
async def test_the_gate_takes_a_pruned_cause_as_applied(
    delivery: Delivery, monkeypatch: Any, batch: bool
) -> None:
    gate = CausalGate(delivery, "triage.gate")
    first, first_entry = entry("c1", v7_at(OLD), [], OLD)
    assert await gate_applies(gate, first, first_entry, OLD, monkeypatch, batch) == [first.event_id]
    engine = delivery.sessions.kw["bind"]
    pruner = InboxPruner(engine, TABLES.inbox, "triage", timedelta(days=30))
    assert await pruner.prune_once(NOW) == 1  # the case's first entry is forgotten

    # forty days on, the case's next entry: without a retention the gate would wait for ever
    later, later_entry = entry("c1", new_event_id(), [first.event_id], NOW)
    delivery.inbox_retention = None
    assert await gate_applies(gate, later, later_entry, NOW, monkeypatch, batch) == []
    assert await gate.parked("c1") == 1
    async with delivery.sessions() as s:  # parked: forget it, and hand it again as it came
        for row in (await s.exec(select(TABLES.parked))).all():
            await s.delete(row)
        for row in (await s.exec(select(TABLES.inbox))).all():
            await s.delete(row)
        await s.commit()
    delivery.inbox_retention = timedelta(days=30)
    assert await gate_applies(gate, later, later_entry, NOW, monkeypatch, batch) == [later.event_id]
    assert await gate.parked() == 0


@pytest.mark.parametrize("batch", [False, True], ids=["alone", "batch"])
async def test_an_old_cause_that_is_parked_still_holds_its_effect(
    delivery: Delivery, monkeypatch: Any, batch: bool
) -> None:
    delivery.inbox_retention = timedelta(days=30)
    gate = CausalGate(delivery, "triage.gate")
    missing = v7_at(RECENT)  # a recent cause that has not come yet
    cause, cause_entry = entry("c2", v7_at(OLD), [missing], OLD)
    assert await gate_applies(gate, cause, cause_entry, NOW, monkeypatch, batch) == []
    effect, effect_entry = entry("c2", new_event_id(), [cause.event_id], NOW)
    assert await gate_applies(gate, effect, effect_entry, NOW, monkeypatch, batch) == []
    assert await gate.parked("c2") == 2
    # the missing cause comes: the three are applied in causal order
    first, first_entry = entry("c2", missing, [], RECENT)
    got = await gate_applies(gate, first, first_entry, NOW, monkeypatch, batch)
    assert got == [missing, cause.event_id, effect.event_id]
    assert await gate.parked("c2") == 0
