"""The aiokafka adapter on the real broker: settings in force, commit after processing, DLQ."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.bus import KafkaBus, Message, OutgoingMessage

pytestmark = pytest.mark.kafka


async def _wait(cond, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def test_producer_and_consumers_run_with_the_required_settings(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    bus = KafkaBus(kafka_bootstrap, "settings-test")

    async def noop(_m: Message) -> None:
        return None

    bus.subscribe([f"{topic_prefix}a"], f"{topic_prefix}g", noop)
    await bus.start()
    try:
        p = bus.producer
        # the live producer object, not our dict: idempotence creates a transaction manager
        # with a producer id from the broker, and acks="all" is stored as -1
        assert p._txn_manager is not None and p._txn_manager.producer_id >= 0
        assert p._sender._acks == -1
        [c] = bus.consumers
        assert c._enable_auto_commit is False
        assert c._group_id == f"{topic_prefix}g"
    finally:
        await bus.stop()


async def test_offsets_are_committed_only_after_processing(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic, group = f"{topic_prefix}work", f"{topic_prefix}workers"
    done: list[bytes] = []
    block = asyncio.Event()

    async def slow(msg: Message) -> None:
        if msg.value == b"2":
            await block.wait()  # "crash" while processing message 2
        done.append(msg.value)

    bus = KafkaBus(kafka_bootstrap, "commit-test", extra_topics=[topic], partitions=1)
    bus.subscribe([topic], group, slow)
    await bus.start()
    await bus.publish(
        [
            OutgoingMessage(topic, "k", b"1"),
            OutgoingMessage(topic, "k", b"2"),
            OutgoingMessage(topic, "k", b"3"),
        ]
    )
    await _wait(lambda: done == [b"1"])
    await asyncio.sleep(1)
    await bus.stop()  # cancelled mid-message: 2 was never processed

    check = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await check.start()
    try:
        committed = await check.committed(TopicPartition(topic, 0))
    finally:
        await check.stop()
    assert committed in (None, 1)  # never past the unprocessed message

    again: list[bytes] = []

    async def fine(msg: Message) -> None:
        again.append(msg.value)

    bus2 = KafkaBus(kafka_bootstrap, "commit-test-2")
    bus2.subscribe([topic], group, fine)
    await bus2.start()
    try:
        await _wait(lambda: again[-2:] == [b"2", b"3"])
    finally:
        await bus2.stop()
    assert b"2" in again and b"3" in again


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    check = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await check.start()
    try:
        return await check.committed(tp)  # type: ignore[no-any-return]
    finally:
        await check.stop()


async def test_kept_offsets_are_committed_when_idle_and_at_stop_not_per_batch(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic, tp = f"{topic_prefix}lazy", TopicPartition(f"{topic_prefix}lazy", 0)
    done: list[bytes] = []

    async def handler(msg: Message) -> None:
        done.append(msg.value)

    async def run(group: str, values: list[bytes], stop_at_once: bool) -> int | None:
        bus = KafkaBus(
            kafka_bootstrap, group, extra_topics=[topic], partitions=1, commit_interval_ms=60_000
        )
        bus.subscribe([topic], group, handler)
        await bus.start()
        try:
            await bus.publish([OutgoingMessage(topic, "k", v) for v in values])
            await _wait(lambda: done[-1:] == values[-1:])
            if not stop_at_once:  # idle: the next empty fetch (<= 2 s) commits what was kept
                for _ in range(100):
                    if await _committed(kafka_bootstrap, group, tp) == len(values):
                        break
                    await asyncio.sleep(0.1)
                return await _committed(kafka_bootstrap, group, tp)
        finally:
            await bus.stop()  # stopping commits what was kept
        return await _committed(kafka_bootstrap, group, tp)

    assert await run(f"{topic_prefix}idle", [b"1", b"2"], stop_at_once=False) == 2
    assert await run(f"{topic_prefix}stop", [b"3"], stop_at_once=True) == 3


async def test_poison_message_goes_to_dlq_with_origin_and_partition_moves_on(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}in"
    good: list[bytes] = []

    async def handler(msg: Message) -> None:
        if msg.value.startswith(b"bad"):
            raise ValueError("cannot adapt record")
        good.append(msg.value)

    bus = KafkaBus(kafka_bootstrap, "dlq-test", max_attempts=2, extra_topics=[topic], partitions=1)
    bus.subscribe([topic], f"{topic_prefix}g", handler)
    await bus.start()
    try:
        await bus.publish(
            [OutgoingMessage(topic, "k", b"bad \x00 bytes"), OutgoingMessage(topic, "k", b"fine")]
        )
        await _wait(lambda: good == [b"fine"])
    finally:
        await bus.stop()
    dlq = AIOKafkaConsumer(
        f"{topic}.dlq",
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"{topic_prefix}dlq-reader",
    )
    await dlq.start()
    try:
        rec = await asyncio.wait_for(dlq.getone(), 20)
    finally:
        await dlq.stop()
    headers = dict(rec.headers)
    assert rec.value == b"bad \x00 bytes"
    assert headers["dlq.origin.topic"] == topic.encode()
    assert headers["dlq.origin.partition"] == b"0" and headers["dlq.origin.offset"] == b"0"
    assert headers["dlq.attempts"] == b"2"
    assert b"ValueError: cannot adapt record" in headers["dlq.error"]


async def test_one_poison_record_read_by_two_groups_is_dead_lettered_once_per_group(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}shared"

    async def ledger_handler(msg: Message) -> None:
        raise ValueError("ledger cannot read it")

    async def feedback_handler(msg: Message) -> None:
        raise ValueError("feedback cannot read it")

    bus = KafkaBus(kafka_bootstrap, "dlq-groups", max_attempts=1, extra_topics=[topic])
    bus.subscribe([topic], f"{topic_prefix}ledger", ledger_handler)
    bus.subscribe([topic], f"{topic_prefix}feedback", feedback_handler)
    await bus.start()
    try:
        await bus.publish([OutgoingMessage(topic, "k", b"poison")])
        dlq = AIOKafkaConsumer(
            f"{topic}.dlq",
            bootstrap_servers=kafka_bootstrap,
            group_id=f"{topic_prefix}dlq-reader",
            auto_offset_reset="earliest",
        )
        await dlq.start()
        try:
            recs = [await asyncio.wait_for(dlq.getone(), 30) for _ in range(2)]
        finally:
            await dlq.stop()
    finally:
        await bus.stop()
    by_group = {dict(r.headers)["dlq.group"]: dict(r.headers) for r in recs}
    assert set(by_group) == {f"{topic_prefix}ledger".encode(), f"{topic_prefix}feedback".encode()}
    assert by_group[f"{topic_prefix}ledger".encode()]["dlq.handler"].endswith(b"ledger_handler")
    assert all(r.value == b"poison" for r in recs)


async def test_one_fetch_of_many_partitions_is_one_batch_and_a_failing_one_goes_alone(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic, group = f"{topic_prefix}many", f"{topic_prefix}g"
    calls: list[list[tuple[int, bytes]]] = []  # each batch handler call: (partition, value)
    kept: list[bytes] = []  # what committed work kept (a failed batch keeps nothing)
    one_by_one: list[bytes] = []

    async def handler(msg: Message) -> None:
        if msg.value.endswith(b"poison"):
            raise ValueError("cannot read it")
        one_by_one.append(msg.value)
        kept.append(msg.value)

    async def batch_handler(msgs: list[Message]) -> None:
        calls.append([(m.partition, m.value) for m in msgs])
        if any(m.value.endswith(b"poison") for m in msgs):
            raise ValueError("cannot read it")  # the whole batch rolls back
        kept.extend(m.value for m in msgs)

    producer = KafkaBus(kafka_bootstrap, "many-producer", extra_topics=[topic], partitions=4)
    await producer.start()
    # keys spread over the four partitions, a key's records in order in its partition, and
    # a poison record in each key's middle: whatever a fetch brings holds one
    sent = [
        OutgoingMessage(topic, f"case{k}", f"case{k}-{i}".encode())
        for i in range(5)
        for k in range(8)
    ]
    sent[16:16] = [OutgoingMessage(topic, f"case{k}", f"case{k}-poison".encode()) for k in range(8)]
    await producer.publish(sent)
    await producer.stop()

    bus = KafkaBus(kafka_bootstrap, "many-consumer", max_attempts=1)
    bus.subscribe([topic], group, handler, batch_handler)
    await bus.start()
    try:
        await _wait(lambda: len(kept) == 40)
        await asyncio.sleep(1)  # nothing more comes (no record twice)
    finally:
        await bus.stop()
    assert sorted(kept) == sorted(m.value for m in sent if not m.value.endswith(b"poison"))
    # the first fetch held several partitions: one call with all of them; it failed, then
    # each partition went alone (and failed), then its records one by one
    first = {p for p, _ in calls[0]}
    assert len(first) > 1
    assert [{p for p, _ in c} for c in calls[1 : 1 + len(first)]] == [
        {p} for p in sorted(first, key=[p for p, _ in calls[0]].index)
    ]
    assert {v for _, v in calls[0] if not v.endswith(b"poison")} <= set(one_by_one)
    for k in range(8):  # per key, offset order kept through every path
        mine = [v for v in kept if v.startswith(f"case{k}-".encode())]
        assert mine == [f"case{k}-{i}".encode() for i in range(5)]
    check = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await check.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(4)]
        ends = await check.end_offsets(tps)
        committed = {tp: (await check.committed(tp)) or 0 for tp in tps}  # None: never used
    finally:
        await check.stop()
    assert committed == ends  # every partition committed to its end, once the work was kept


async def test_a_small_fetch_lingers_for_what_arrives_meanwhile(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}linger"
    calls: list[list[bytes]] = []

    async def handler(msg: Message) -> None:
        raise AssertionError("every record goes through the batch handler")

    async def batch_handler(msgs: list[Message]) -> None:
        calls.append([m.value for m in msgs])

    bus = KafkaBus(kafka_bootstrap, "linger", extra_topics=[topic], partitions=1, linger_ms=1500)
    bus.subscribe([topic], f"{topic_prefix}g", handler, batch_handler)
    await bus.start()
    try:
        await bus.publish([OutgoingMessage(topic, "k", b"warm-up")])
        await _wait(lambda: calls == [[b"warm-up"]])  # joined, fetching: the next comes at once
        await bus.publish([OutgoingMessage(topic, "k", b"first")])
        await asyncio.sleep(0.5)  # the consumer has fetched "first" and lingers
        await bus.publish([OutgoingMessage(topic, "k", b"second")])
        await _wait(lambda: sum(len(c) for c in calls) == 3)
    finally:
        await bus.stop()
    assert calls[1:] == [[b"first", b"second"]]  # one batch, in order
