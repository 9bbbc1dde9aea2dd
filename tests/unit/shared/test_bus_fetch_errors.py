"""The consumer loop when handling a fetch stops half-way: no record of the fetch is skipped.

The consumer loop (KafkaBus._consume) is driven by a fake aiokafka consumer that keeps what
the real one keeps and that these defects depend on: a position per partition that getmany
advances past what it returned (and only seek moves back), and a commit that refuses offsets
of a partition not assigned (aiokafka's IllegalStateError, raised on the client: no rebalance,
so no position is reset from the committed offsets).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from shared.bus import KafkaBus, Message, OutgoingMessage, _Offsets, _revoke_listener, _Subscription

TOPIC = "review.t"
P0, P1, P2 = (TopicPartition(TOPIC, i) for i in range(3))


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class FakeConsumer:
    """What an aiokafka consumer does with positions, assignment and commits."""

    def __init__(self, tps: list[TopicPartition]) -> None:
        self.logs: dict[TopicPartition, list[Record]] = {tp: [] for tp in tps}
        self.position: dict[TopicPartition, int] = {tp: 0 for tp in tps}
        self.owned: set[TopicPartition] = set(tps)
        self.committed: dict[TopicPartition, int] = {}

    def append(self, tp: TopicPartition, value: bytes) -> None:
        log = self.logs[tp]
        log.append(Record(tp.topic, tp.partition, len(log), b"case", value))

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        out = {}
        for tp in sorted(self.owned):
            records = self.logs[tp][self.position[tp] :]
            if records:
                out[tp] = records
                self.position[tp] += len(records)  # what getmany returned is consumed
        if not out:
            await asyncio.sleep(min(timeout_ms, 20) / 1000)
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self.owned:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.position[tp] = offset

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for tp in offsets:  # aiokafka.AIOKafkaConsumer.commit checks this before sending
            if tp not in self.owned:
                raise IllegalStateError(f"Partition {tp} is not assigned")
        self.committed.update(offsets)

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.logs[tp])


def make_bus(consumer: FakeConsumer, commit_interval_ms: float) -> KafkaBus:
    bus = KafkaBus("unused:9092", "review", commit_interval_ms=commit_interval_ms)
    bus._offsets[id(consumer)] = _Offsets(consumer, commit_interval_ms / 1000)
    return bus


async def run_consumer(bus: KafkaBus, consumer: FakeConsumer, sub: _Subscription, s: float) -> None:
    task = asyncio.create_task(bus._consume(consumer, sub))
    await asyncio.sleep(s)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def handlers(handled: list[tuple[int, int]]) -> tuple[Any, Any]:
    """A poison record fails every attempt; the others are recorded as handled."""

    async def one(msg: Message) -> None:
        if msg.value == b"poison":
            raise ValueError("poison")
        handled.append((msg.partition, msg.offset))

    async def batch(msgs: list[Message]) -> None:
        if any(m.value == b"poison" for m in msgs):
            raise ValueError("poison in the batch")  # rolled back whole: nothing kept
        handled.extend((m.partition, m.offset) for m in msgs)

    return one, batch


async def test_a_dead_letter_that_cannot_be_published_skips_the_other_partitions() -> None:
    """bus.py:602-603 with bus.py:316-330 and 680-687.

    One fetch brings a poison record on partition 0 and a good one on partition 1. The batch
    of both fails, so each partition goes on its own; partition 0's poison record fails every
    attempt and its dead letter cannot be published (the broker is away). The exception leaves
    _handle_partition (whose finally seeks partition 0 back) and the loop over `parts`, so
    partition 1 is never handled, though getmany already moved its position past the record.
    When the broker answers again, partition 1's next record is handled and its offset (past
    the skipped one) is committed: the skipped record is lost for this group for good.
    """
    consumer = FakeConsumer([P0, P1])
    consumer.append(P0, b"poison")
    consumer.append(P1, b"good-0")
    bus = make_bus(consumer, commit_interval_ms=0)
    bus.dlq.backoff_s = 0
    handled: list[tuple[int, int]] = []
    dead: list[OutgoingMessage] = []
    broker_away = [True]

    async def publish(messages: Any) -> None:
        if broker_away[0]:
            broker_away[0] = False  # it answers again from the next attempt on
            consumer.append(P1, b"good-1")  # and the source keeps writing
            raise TimeoutError("dead letter not acknowledged: broker unreachable")
        dead.extend(messages)

    bus.publish = publish  # type: ignore[method-assign]
    one, batch = handlers(handled)
    sub = _Subscription([TOPIC], "review-group", one, batch)

    await run_consumer(bus, consumer, sub, 1.6)  # the loop sleeps 1 s after an error

    assert [m.value for m in dead] == [b"poison"]  # the poison record went once it could
    assert (1, 1) in handled and consumer.committed.get(P1) == 2  # partition 1 moved on ...
    assert (1, 0) in handled, (  # ... past a record that was never handled
        f"partition 1 offset 0 was skipped: handled={handled}, committed={consumer.committed}"
    )


async def test_an_offset_kept_after_a_revoke_makes_a_later_fetch_skip_records() -> None:
    """bus.py:189-198 (the revoke listener), 166-186 (_Offsets) and 602-603/683-687.

    A rebalance runs while partition 0's batch is being handled: the listener commits and drops
    partition 0's pending offset, partition 0 goes to another member, this one keeps 1 and 2.
    The batch then commits its transaction and `kept()` puts partition 0's offset back into
    `pending` (nothing checks it is still ours). The next fetch brings a poison record on
    partition 1 and a good one on partition 2; their batch fails, so partition 1 goes on its
    own; once the commit interval has passed its `kept()` commits {p0, p1}, and aiokafka
    refuses the whole commit on the client (IllegalStateError: partition 0 is not assigned).
    That is no rebalance, so no position is reset: the exception leaves the loop over `parts`
    and partition 2's record, already consumed by getmany, is skipped; partition 2's next
    record is handled and committed past it.
    """
    consumer = FakeConsumer([P0, P1, P2])
    consumer.append(P0, b"good-0")
    bus = make_bus(consumer, commit_interval_ms=200)  # the services' default
    bus.dlq.backoff_s = 0.15  # the poison record's retries outlast the commit interval
    handled: list[tuple[int, int]] = []
    dead: list[OutgoingMessage] = []
    one, batch = handlers(handled)
    listener = _revoke_listener(bus._offsets[id(consumer)])

    async def batch_during_rebalance(msgs: list[Message]) -> None:
        if msgs[0].partition == 0 and not consumer.committed and P0 in consumer.owned:
            # the coordinator's task rebalances while this batch is in its transaction
            await listener.on_partitions_revoked({P0, P1, P2})
            consumer.owned = {P1, P2}  # positions of P1/P2 reset to their committed offsets
            consumer.append(P1, b"poison")
            consumer.append(P2, b"good-0")
        await batch(msgs)

    async def publish(messages: Any) -> None:
        dead.extend(messages)
        consumer.append(P2, b"good-1")

    bus.publish = publish  # type: ignore[method-assign]
    sub = _Subscription([TOPIC], "review-group", one, batch_during_rebalance)

    await run_consumer(bus, consumer, sub, 2.0)

    assert (0, 0) in handled and [m.value for m in dead] == [b"poison"]
    assert (2, 1) in handled and consumer.committed.get(P2) == 2  # partition 2 moved on ...
    assert (2, 0) in handled, (  # ... past a record that was never handled
        f"partition 2 offset 0 was skipped: handled={handled}, committed={consumer.committed}"
    )
