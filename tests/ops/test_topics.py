"""Topic creation takes partitions and replicas from settings (real broker)."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.bus import KafkaBus
from shared.settings import ServiceSettings

pytestmark = pytest.mark.kafka


def test_production_defaults_are_twelve_partitions_and_replicas_from_the_cluster() -> None:
    fields = ServiceSettings.model_fields
    assert fields["kafka_partitions"].default == 12
    assert fields["kafka_replication_factor"].default == 0  # min(3, brokers)


async def test_topics_are_created_with_the_configured_partitions_and_fitting_replicas(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}ops.partitions"
    bus = KafkaBus(kafka_bootstrap, "ops-topics", extra_topics=[topic], partitions=12)
    await bus.ensure_topics([topic])
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        described = await admin.describe_topics([topic, f"{topic}.dlq"])
    finally:
        await admin.close()
    for t in described:
        assert len(t["partitions"]) == 12, t["topic"]
        assert {len(p["replicas"]) for p in t["partitions"]} == {min(3, brokers)}
