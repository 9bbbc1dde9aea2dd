"""Intake on the real broker: native records from each source become cases, a broken one is
dead-lettered with its raw bytes and the reason, and status feedback goes out keyed by
source_ref."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.intake.main import create_app
from services.intake.repository import report_by_ref
from services.intake.settings import IntakeSettings
from shared.topics import Topics
from tests.integration.kafka_helpers import publish, read_records, until
from tests.unit.intake.natives import NATIVE, REFS, raw

pytestmark = pytest.mark.kafka


async def read_topic(bootstrap: str, topic: str, want: int) -> list[Any]:
    """Read at least `want` records of a topic from the beginning."""
    return await read_records(bootstrap, [topic], lambda records: len(records) >= want)


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
        await publish(
            kafka_bootstrap,
            [(topics.source("110"), b"J-BROKEN", broken)]
            + [(topics.source(s), REFS[s].encode(), raw(record)) for s, record in NATIVE.items()],
        )

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
