"""The real Kafka broker started by scripts/kafka.sh works with aiokafka.

Needs a broker on KAFKA_BOOTSTRAP (default 127.0.0.1:9092); the test session
starts it with `scripts/kafka.sh start`.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.kafka

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
N_MESSAGES = 20


async def test_idempotent_producer_and_group_consumer_roundtrip() -> None:
    suffix = uuid.uuid4().hex[:12]
    topic = f"test-broker-{suffix}"
    group = f"test-broker-group-{suffix}"
    sent = [f"msg-{i:03d}".encode() for i in range(N_MESSAGES)]

    # One partition and one key, so Kafka guarantees the order end to end.
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        offsets = []
        for value in sent:
            md = await producer.send_and_wait(topic, value=value, key=b"k")
            offsets.append(md.offset)
    finally:
        await producer.stop()
    assert offsets == list(range(N_MESSAGES))

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        received: list[bytes] = []

        async def read_all() -> None:
            async for msg in consumer:
                assert msg.topic == topic
                assert msg.key == b"k"
                received.append(msg.value)
                if len(received) == N_MESSAGES:
                    return

        await asyncio.wait_for(read_all(), timeout=60)
        assert received == sent

        await consumer.commit()
        tp = TopicPartition(topic, 0)
        assert await consumer.committed(tp) == N_MESSAGES

        # Nothing more than what was sent.
        extra = await consumer.getmany(timeout_ms=500)
        assert not any(extra.values())
    finally:
        await consumer.stop()

    # The committed offset is stored by the broker's group coordinator: a new
    # consumer of the same group sees it.
    check = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False)
    await check.start()
    try:
        assert await check.committed(TopicPartition(topic, 0)) == N_MESSAGES
    finally:
        await check.stop()
