"""The outbox relay on the real broker: a fatal producer error, partial failures, case order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import registry
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.bus import KafkaBus
from shared.contracts import CaseClosed, CaseReopened
from shared.db import Delivery, OutboxRelay, RelayStalled, delivery_tables, make_engine
from tests.integration.kafka_helpers import read_records

pytestmark = pytest.mark.kafka


class Base(SQLModel, registry=registry()):
    pass


TABLES = delivery_tables(Base)


@pytest.fixture
async def delivery(tmp_path: Path, topic_prefix: str) -> AsyncIterator[Delivery]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield Delivery(
        async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False),
        TABLES,
        "relaytest",
        f"{topic_prefix}cases.trail",
    )
    await engine.dispose()


async def _emit_case(delivery: Delivery, case_id: str, closed: str, reopened: str) -> None:
    """Three events of one case over two topics, in three transactions."""
    for i in range(3):
        async with delivery.transaction() as tx:
            if i % 2:
                tx.emit(
                    reopened,
                    "case.reopened",
                    CaseReopened(case_id=case_id, reason=f"r{i}", visit_id=f"v{i}"),
                    case_id,
                )
            else:
                tx.emit(
                    closed, "case.closed", CaseClosed(case_id=case_id, outcome=f"o{i}"), case_id
                )


async def test_a_fatal_producer_error_recreates_the_producer_and_nothing_is_sent_twice(
    kafka_bootstrap: str, topic_prefix: str, delivery: Delivery
) -> None:
    closed, reopened = f"{topic_prefix}closed", f"{topic_prefix}reopened"
    bus = KafkaBus(kafka_bootstrap, "relay-test", extra_topics=[closed, reopened])
    await bus.start()
    try:
        for case_id in ("a", "b", "c"):
            await _emit_case(delivery, case_id, closed, reopened)
        async with delivery.sessions() as s:
            rows = (await s.exec(select(TABLES.outbox).order_by(TABLES.outbox.id))).all()
        first = bus.producer
        real_send = first.send
        refused: list[bytes] = []

        async def send(topic: str, value: bytes, key: bytes | None = None, **kw: Any) -> Any:
            # the broker answers case b's first record with the error that stalled intake
            if key == b"b" and not refused:
                refused.append(key)
                raise OutOfOrderSequenceNumber()
            return await real_send(topic, value, key=key, **kw)

        first.send = send
        relay = OutboxRelay(delivery, bus)
        with pytest.raises(RelayStalled):
            await relay.publish_pending()
        assert bus.producer is not first and bus.producer_resets == 1
        assert first._closed  # the broken producer was closed, not left to rot
        assert await relay.publish_pending() == 3  # only case b's rows were left
        assert await relay.publish_pending() == 0
        async with delivery.sessions() as s:  # every row sent was deleted
            assert (await s.exec(select(TABLES.outbox))).all() == []
        records = await read_records(
            kafka_bootstrap, [closed, reopened], lambda rs: len(rs) >= len(rows)
        )
        by_value = [r.value for r in records]
        assert sorted(by_value) == sorted(r.value for r in rows)  # each exactly once
        for topic in (closed, reopened):
            for case_id in ("a", "b", "c"):
                on_topic = [
                    r.value for r in records if r.topic == topic and r.key == case_id.encode()
                ]
                expected = [r.value for r in rows if r.topic == topic and r.key == case_id]
                assert on_topic == expected  # in outbox order
    finally:
        await bus.stop()
