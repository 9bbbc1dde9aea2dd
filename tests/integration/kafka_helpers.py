"""Helpers for tests on the real broker: publish records, read topics back, wait for outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events import Envelope


async def until(cond: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Poll an outcome until it holds and return it (nothing about time is asserted)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await cond()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)


async def publish(bootstrap: str, records: Iterable[tuple[str, bytes, bytes]]) -> None:
    """Send (topic, key, value) records in order, waiting for each to be acknowledged by all."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_records(
    bootstrap: str,
    topics: Sequence[str],
    done: Callable[[list[Any]], bool],
    group: str | None = None,
) -> list[Any]:
    """Read raw records of the topics from the beginning until `done` holds for those read."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:

        async def complete() -> bool:
            batches = await consumer.getmany(timeout_ms=500)
            for recs in batches.values():
                records.extend(recs)
            return done(records)

        await until(complete)
    finally:
        await consumer.stop()
    return records


async def read_envelopes(
    bootstrap: str,
    topics: Sequence[str],
    group: str,
    done: Callable[[list[Envelope]], bool],
    *,
    dedupe: bool = True,
) -> list[Envelope]:
    """Read envelopes of the topics from the beginning until `done` holds for those read.

    Delivery is at least once: with `dedupe` an event id is kept once (its first copy);
    without it every copy is returned, so a test can assert an event was sent exactly once.
    """
    envelopes: list[Envelope] = []
    ids: set[str] = set()
    parsed = 0

    def complete(records: list[Any]) -> bool:
        nonlocal parsed
        for r in records[parsed:]:
            e = Envelope.from_bytes(r.value)
            if not dedupe or e.event_id not in ids:
                ids.add(e.event_id)
                envelopes.append(e)
        parsed = len(records)
        return done(envelopes)

    await read_records(bootstrap, topics, complete, group)
    return envelopes
