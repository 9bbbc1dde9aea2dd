"""Intake on the real broker: native records from each source become cases, a broken one is
dead-lettered with its raw bytes and the reason, and status feedback goes out keyed by
source_ref."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.intake.main import create_app
from services.intake.repository import report_by_ref
from services.intake.settings import IntakeSettings
from shared.topics import Topics
from tests.unit.intake.natives import NATIVE, REFS, raw

pytestmark = pytest.mark.kafka


async def until(cond: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Poll an outcome until it holds (nothing about time is asserted)."""
    for _ in range(int(timeout / 0.2)):
        value = await cond()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached")


async def read_topic(bootstrap: str, topic: str, want: int) -> list[Any]:
    """Read at least `want` records of a topic from the beginning."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        for _ in range(150):
            batches = await consumer.getmany(timeout_ms=400)
            for recs in batches.values():
                records.extend(recs)
            if len(records) >= want:
                break
    finally:
        await consumer.stop()
    return records


async def test_native_records_on_the_broker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = IntakeSettings(
        bus="kafka",
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        group_prefix=topic_prefix,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}",
        relay_interval_s=0.1,
    )
    topics = Topics(topic_prefix)
    app = create_app(settings, configure_logs=False)
    broken = b'{"jjdbh": "J-BROKEN", "bjsj": "not a time", "bjnr": "x"}'
    async with app.router.lifespan_context(app):
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topics.source("110"), broken, key=b"J-BROKEN")
            for source, record in NATIVE.items():
                await producer.send_and_wait(
                    topics.source(source), raw(record), key=REFS[source].encode()
                )
        finally:
            await producer.stop()

        sessions = app.state.runtime.sessions

        async def all_cases() -> bool:
            async with sessions() as s:
                rows = [await report_by_ref(s, src, ref) for src, ref in REFS.items()]
            return all(rows)

        await until(all_cases)
        dead = await read_topic(kafka_bootstrap, Topics.dlq(topics.source("110")), 1)
        assert [r.value for r in dead] == [broken]
        headers = dict(dead[0].headers)
        assert b"'bjsj' is not a timestamp" in headers["dlq.error"]
        assert headers["dlq.origin.topic"] == topics.source("110").encode()

        feedback = await read_topic(kafka_bootstrap, topics.feedback("12345"), 1)
        assert feedback[0].key == REFS["12345"].encode()
        body = json.loads(feedback[0].value)
        assert body["status"] == "received" and body["source_ref"] == REFS["12345"]
        async with sessions() as s:
            assert await report_by_ref(s, "110", "J-BROKEN") is None
