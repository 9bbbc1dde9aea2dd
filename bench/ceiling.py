"""The broker's own ceiling: raw aiokafka produce (acks=all, idempotent) and group consume."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from bench.common import BOOTSTRAP, SAMPLES
from shared.bus import CONSUMER_SETTINGS, PRODUCER_SETTINGS
from shared.events import Envelope

MESSAGE_BYTES = 1536  # a report.received envelope with a typical report is about this size


def canonical_messages(count: int = 48, size: int = MESSAGE_BYTES) -> list[bytes]:
    """report.received-like envelopes built from the sample reports, padded to `size` bytes."""
    rows = [json.loads(x) for x in SAMPLES.read_text(encoding="utf-8").splitlines() if x.strip()]
    out = []
    for i in range(count):
        report = {k: v for k, v in rows[i % len(rows)].items() if k not in ("expected", "why")}
        env = Envelope(
            event_type="report.received",
            producer="bench",
            case_id=uuid.uuid4().hex,
            correlation_id=uuid.uuid4().hex,
            payload={**report, "pad": ""},
        )
        raw = env.to_bytes()
        if len(raw) < size:
            env.payload["pad"] = "x" * (size - len(raw))
            raw = env.to_bytes()
        out.append(raw)
    return out


async def _produce(topic: str, n: int, messages: list[bytes], window: int) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, client_id="bench-ceiling", **PRODUCER_SETTINGS
    )
    await producer.start()
    try:
        # warm-up: metadata for the fresh topic, one acknowledged send
        await (await producer.send(topic, messages[0], key=b"warm"))
        start = time.perf_counter()
        pending: list[asyncio.Future[Any]] = []
        for i in range(n):
            pending.append(
                await producer.send(topic, messages[i % len(messages)], key=str(i).encode())
            )
            if len(pending) >= window:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return time.perf_counter() - start
    finally:
        await producer.stop()


async def _consume(topic: str, n: int, timeout_s: float) -> tuple[float, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"bench-ceiling-{uuid.uuid4().hex[:8]}",
        client_id="bench-ceiling-consumer",
        **CONSUMER_SETTINGS,
    )
    await consumer.start()
    seen, start = 0, None
    deadline = time.monotonic() + timeout_s
    try:
        while seen < n + 1 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            if batches and start is None:
                start = time.perf_counter()
            for records in batches.values():
                seen += len(records)
            if batches:
                await consumer.commit()  # as the services do: commit after processing
        elapsed = time.perf_counter() - start if start is not None else float("nan")
        return elapsed, seen
    finally:
        await consumer.stop()


async def run_async(n: int, timeout_s: float = 300) -> dict[str, Any]:
    """Produce n messages to a fresh topic, then consume them in a fresh group."""
    messages = canonical_messages()
    topic = f"bench.ceiling.{uuid.uuid4().hex[:10]}"
    produce_s = await asyncio.wait_for(_produce(topic, n, messages, window=1000), timeout_s)
    consume_s, seen = await _consume(topic, n, timeout_s)
    produce_rate = n / produce_s
    consume_rate = (seen - 1) / consume_s if seen > 1 else 0.0
    return {
        "messages": n,
        "message_bytes": len(messages[0]),
        "topic": topic,
        "producer": {k: v for k, v in PRODUCER_SETTINGS.items()},
        "produce_s": round(produce_s, 3),
        "produce_msgs_per_s": round(produce_rate, 1),
        "produce_mb_per_s": round(produce_rate * len(messages[0]) / 1e6, 2),
        "consume_s": round(consume_s, 3),
        "consumed": seen - 1,
        "consume_msgs_per_s": round(consume_rate, 1),
        "ceiling_msgs_per_s": round(min(produce_rate, consume_rate), 1),
    }


def run(n: int) -> dict[str, Any]:
    """Synchronous entry point for bench.run."""
    return asyncio.run(run_async(n))
