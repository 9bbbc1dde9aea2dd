"""Dead letters for operators: list what is waiting in the `<topic>.dlq` topics, and re-drive
it onto its topic once the cause is fixed (`fengqiao deadletters list|redrive`).

A record is dead-lettered when every attempt of one consumer group failed (or its bytes are no
event). In a gated group (the trail's readers) it also holds back its case's later entries
until it is handled, so "fix the cause, then re-drive" is how those cases move again.

- Re-driving publishes the record's own bytes, key and headers (less the `dlq.*` ones, plus
  `redrive.from`) onto the topic it came from, in its dead-letter topic's order: with the same
  key it lands on its case's partition after what followed it, and the gate of each group
  puts it back into causal order. Every group on that topic reads it again; those that had
  handled it skip it (their inbox knows the event id: it must still be within
  `inbox_retention_days`, which already outlasts the topics' retention).
- A cursor per dead-letter partition (the committed offsets of the consumer group
  `fengqiao.redrive`) marks what has been dealt with: `redrive` moves it past what it
  re-drove, only after the broker acknowledged every record; a run that fails half-way moves
  nothing and the next run sends those records again (which the inboxes skip).
- Records dead-lettered because their bytes are no event (`EventDecodeError`: not an envelope,
  or a payload no registered schema reads) cannot be mended by sending them again unless a
  release now reads them: `redrive` passes them (the cursor moves, they stay in the
  dead-letter topic to be inspected) and says how many; `--undecodable` sends them too. A
  source's native record (a report, not an envelope) that failed for another reason is
  re-driven like an event.
- Nothing of a payload is printed: the listing shows where a record came from, which group and
  handler failed, the error (redacted when dead-lettered), and the envelope's type and ids.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.bus import CLIENT_SETTINGS, CONSUMER_SETTINGS, PRODUCER_SETTINGS
from shared.events import Envelope, EventDecodeError
from shared.settings import BrokerSettings

CURSOR_GROUP = "fengqiao.redrive"
DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic, as an operator needs to see it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    pending: bool  # at or past the cursor: not re-driven or passed yet

    def header(self, name: str) -> str:
        """A `dlq.*` header's text ("" when absent)."""
        for k, v in self.headers:
            if k == name:
                return v.decode(errors="replace")
        return ""

    @property
    def origin_topic(self) -> str:
        """The topic it came from (the header, else the dead-letter topic's name)."""
        return self.header("dlq.origin.topic") or self.topic.removesuffix(DLQ_SUFFIX)

    @property
    def undecodable(self) -> bool:
        """Dead-lettered because its bytes are no event (sending them again changes nothing
        until a release reads them)."""
        return self.header("dlq.error").startswith(EventDecodeError.__name__)

    @property
    def envelope(self) -> Envelope | None:
        """The event, or None when its bytes are no envelope (a source's native record, or
        bytes that are nothing)."""
        try:
            return Envelope.from_bytes(self.value)
        except EventDecodeError:
            return None

    def line(self) -> str:
        """One line for the listing: where, who failed, why, which event. No payload."""
        env = self.envelope
        event = f"{env.event_type} {env.event_id} case {env.case_id}" if env else "no envelope"
        origin = (
            f"{self.origin_topic}[{self.header('dlq.origin.partition')}]"
            f"@{self.header('dlq.origin.offset')}"
        )
        return "\t".join(
            (
                f"{self.topic}[{self.partition}]@{self.offset}",
                "pending" if self.pending else "done",
                f"from {origin}",
                f"group {self.header('dlq.group') or '-'}",
                f"handler {self.header('dlq.handler') or '-'}",
                f"attempts {self.header('dlq.attempts') or '-'}",
                event,
                f"error {self.header('dlq.error') or '-'}",
            )
        )


@dataclass
class Redriven:
    """What a `redrive` did (or, dry, would do)."""

    redriven: int = 0
    passed: int = 0  # no event in their bytes: the cursor moved past them


async def read(
    settings: BrokerSettings, topics: Sequence[str] = (), everything: bool = False
) -> list[DeadLetter]:
    """The dead letters past the cursor (`everything`: all the topics still hold), in each
    dead-letter partition's order. `topics`: dead-letter topics or the topics they serve
    (default: every dead-letter topic under the settings' topic prefix)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tps = [TopicPartition(t, p) for t, p in await _partitions(settings, topics)]
    if not tps:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.group(CURSOR_GROUP),
        client_id="fengqiao-deadletters",
        **settings.kafka_client_options(),
        **CLIENT_SETTINGS,
        **CONSUMER_SETTINGS,
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        cursor = {tp: (await consumer.committed(tp)) or 0 for tp in tps}
        for tp in tps:
            consumer.seek(tp, starts[tp] if everything else max(cursor[tp], starts[tp]))
        out: list[DeadLetter] = []
        todo = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while todo:
            batches = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, records in batches.items():
                out += [
                    DeadLetter(
                        r.topic,
                        r.partition,
                        r.offset,
                        r.key,
                        r.value or b"",
                        tuple(r.headers or ()),
                        r.offset >= cursor[tp],
                    )
                    for r in records
                    if r.offset < ends[tp]
                ]
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
        return sorted(out, key=lambda d: (d.topic, d.partition, d.offset))
    finally:
        await consumer.stop()


async def redrive(
    settings: BrokerSettings,
    topics: Sequence[str] = (),
    dry_run: bool = False,
    undecodable: bool = False,
) -> tuple[Redriven, list[DeadLetter]]:
    """Send every pending dead letter back onto its topic (those whose bytes are no event only
    when `undecodable`), then move the cursor past them."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    letters = [d for d in await read(settings, topics) if d.pending]
    done = Redriven()
    to_send = [d for d in letters if undecodable or not d.undecodable]
    done.redriven, done.passed = len(to_send), len(letters) - len(to_send)
    if dry_run or not letters:
        return done, letters
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        **settings.kafka_client_options(),
        **CLIENT_SETTINGS,
    }
    producer = AIOKafkaProducer(client_id="fengqiao-redrive", **options, **PRODUCER_SETTINGS)
    await producer.start()
    try:
        sent = [
            await producer.send(
                d.origin_topic,
                d.value,
                key=d.key,
                headers=[
                    *((k, v) for k, v in d.headers if not k.startswith("dlq.")),
                    ("redrive.from", f"{d.topic}:{d.partition}:{d.offset}".encode()),
                ],
            )
            for d in to_send
        ]
        await asyncio.gather(*sent)  # every record acknowledged before the cursor moves
    finally:
        await producer.stop()
    cursor: dict[Any, int] = {}
    for d in letters:
        tp = TopicPartition(d.topic, d.partition)
        cursor[tp] = max(cursor.get(tp, 0), d.offset + 1)
    committer = AIOKafkaConsumer(
        group_id=settings.group(CURSOR_GROUP), client_id="fengqiao-redrive", **options
    )
    await committer.start()
    try:
        committer.assign(list(cursor))
        await committer.commit(cursor)
    finally:
        await committer.stop()
    return done, letters


async def _partitions(settings: BrokerSettings, wanted: Sequence[str]) -> list[tuple[str, int]]:
    """The dead-letter partitions asked for (default: every `.dlq` topic under the prefix)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="fengqiao-deadletters",
        **settings.kafka_client_options(),
        **CLIENT_SETTINGS,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if wanted:
            names = {t if t.endswith(DLQ_SUFFIX) else t + DLQ_SUFFIX for t in wanted} & existing
        else:
            names = {
                t
                for t in existing
                if t.endswith(DLQ_SUFFIX) and t.startswith(settings.topic_prefix)
            }
        described = await admin.describe_topics(sorted(names)) if names else []
    finally:
        await admin.close()
    return sorted((d["topic"], p["partition"]) for d in described for p in d["partitions"])


def main(argv: list[str]) -> int:
    """`fengqiao deadletters list [--all] [TOPIC …]` and `… redrive [--dry-run] [TOPIC …]`."""
    import argparse

    p = argparse.ArgumentParser(
        prog="fengqiao deadletters",
        description="Dead letters waiting in <topic>.dlq; re-drive them once the cause is fixed.",
    )
    sub = p.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="pending dead letters, one line each (no payload)")
    listing.add_argument("--all", action="store_true", help="also those already dealt with")
    again = sub.add_parser("redrive", help="send pending dead letters back onto their topics")
    again.add_argument("--dry-run", action="store_true", help="list what would be sent")
    again.add_argument(
        "--undecodable", action="store_true", help="also those whose bytes were no event"
    )
    for sp in (listing, again):
        sp.add_argument(
            "topics", nargs="*", metavar="TOPIC", help="a topic or its .dlq (default: all)"
        )
    args = p.parse_args(argv)
    settings = BrokerSettings()
    if args.action == "list":
        letters = asyncio.run(read(settings, args.topics, everything=args.all))
        for d in letters:
            print(d.line())
        pending = sum(d.pending for d in letters)
        print(f"{pending} pending dead letter(s)", file=sys.stderr)
        return 0
    done, letters = asyncio.run(
        redrive(settings, args.topics, dry_run=args.dry_run, undecodable=args.undecodable)
    )
    verb = "would re-drive" if args.dry_run else "re-drove"
    for d in letters:
        sent = args.undecodable or not d.undecodable
        print(f"{verb if sent else 'passed (no event in its bytes)'}\t{d.line()}")
    print(f"{verb} {done.redriven} record(s); passed {done.passed} (no event)", file=sys.stderr)
    return 0
