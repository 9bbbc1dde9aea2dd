"""`fengqiao deadletters` on the real broker: list what a consumer gave up on, re-drive it once
the cause is fixed, and never send the same dead letter twice."""

from __future__ import annotations

import asyncio

import pytest

from shared.bus import KafkaBus, Message, OutgoingMessage
from shared.deadletters import main, read, redrive
from shared.events import Envelope
from shared.settings import BrokerSettings
from tests.integration.kafka_helpers import read_records, until

pytestmark = pytest.mark.kafka

PHONE = "13912345678"
NATIVE = b'{"source": "110", "source_ref": "N-1", "text": "report"}'


def event(event_type: str, case_id: str) -> Envelope:
    return Envelope(
        event_type=event_type,
        producer="test",
        case_id=case_id,
        correlation_id="c",
        payload={"text": f"张三 {PHONE} 说楼上漏水"},
    )


async def test_a_dead_letter_is_listed_then_redriven_once_its_cause_is_fixed(
    kafka_bootstrap: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = f"{topic_prefix}work"
    settings = BrokerSettings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, group_prefix=topic_prefix
    )
    broken = True
    handled: list[str] = []

    async def handle(msg: Message) -> None:
        if msg.value == NATIVE:  # a source's own record: a report, not an envelope
            if broken:
                raise RuntimeError("the store is down")
            handled.append("native")
            return
        env = Envelope.from_bytes(msg.value)
        if broken and env.event_type == "case.poisoned":
            raise RuntimeError("the store is down")
        handled.append(env.event_id)

    bus = KafkaBus(kafka_bootstrap, "deadletters", max_attempts=2, extra_topics=[topic])
    bus.subscribe([topic], f"{topic_prefix}workers", handle)
    await bus.start()
    try:
        first, poisoned, other = (
            event("case.a", "c1"),
            event("case.poisoned", "c1"),
            event("b", "c2"),
        )
        await bus.publish(
            [OutgoingMessage(topic, e.case_id, e.to_bytes()) for e in (first, poisoned, other)]
            + [OutgoingMessage(topic, "c3", b"\xff not an event")]
            + [OutgoingMessage(topic, "c4", NATIVE)]
        )

        async def three_pending() -> list[object]:
            letters = await read(settings)
            return letters if len(letters) == 3 else []

        letters = await until(three_pending)
        assert set(handled) == {first.event_id, other.event_id}
        by_event = {d.envelope.event_id if d.envelope else d.value: d for d in letters}
        assert set(by_event) == {poisoned.event_id, NATIVE, b"\xff not an event"}
        assert [d.undecodable for d in letters if d.value == NATIVE] == [False]
        letter = by_event[poisoned.event_id]
        assert letter.pending and letter.origin_topic == topic
        assert letter.header("dlq.group") == f"{topic_prefix}workers"
        assert "RuntimeError: the store is down" in letter.line()
        assert all(PHONE not in d.line() and "张三" not in d.line() for d in letters)

        done, _ = await redrive(settings, dry_run=True)
        assert (done.redriven, done.passed) == (2, 1)  # the bytes that are nothing: passed
        assert len(await read(settings)) == 3  # a dry run moves nothing

        broken = False
        done, _ = await redrive(settings)
        assert (done.redriven, done.passed) == (2, 1)

        async def both_handled() -> bool:
            return poisoned.event_id in handled and "native" in handled  # the source's too

        await until(both_handled)
        assert await read(settings) == []  # the cursor is past all three
        assert [d.pending for d in await read(settings, everything=True)] == [False] * 3
        done, _ = await redrive(settings)
        assert (done.redriven, done.passed) == (0, 0)  # nothing is sent twice

        records = await read_records(kafka_bootstrap, [topic], lambda rs: len(rs) >= 7)
        again, _native = sorted(
            (r for r in records if dict(r.headers or ()).get("redrive.from")),
            key=lambda r: r.value == NATIVE,
        )
        assert again.value == poisoned.to_bytes() and again.key == b"c1"
        assert not any(k.startswith("dlq.") for k, _ in again.headers)
        await asyncio.sleep(1)
        assert handled.count(poisoned.event_id) == 1

        for var, value in (
            ("KAFKA_BOOTSTRAP", kafka_bootstrap),
            ("TOPIC_PREFIX", topic_prefix),
            ("GROUP_PREFIX", topic_prefix),
        ):
            monkeypatch.setenv(f"FENGQIAO_{var}", value)
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["list", "--all"]) == 0
        out = capsys.readouterr()
        assert out.out.count("\tdone\t") == 3 and poisoned.event_id in out.out
        assert PHONE not in out.out + out.err and "0 pending" in out.err
    finally:
        await bus.stop()
