"""The bus port, an in-memory adapter for unit tests, and the aiokafka adapter."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared import metrics

log = logging.getLogger("fengqiao.bus")

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Message:
    """One record as a consumer sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True)
class OutgoingMessage:
    """One record to publish."""

    topic: str
    key: str | None
    value: bytes
    headers: Headers = field(default_factory=list)


MessageHandler = Callable[[Message], Awaitable[None]]
# One partition's fetched records, in offset order, handled together (one transaction). When it
# raises, the bus replays the records one at a time through the handler and the dead-letter path.
BatchHandler = Callable[[list[Message]], Awaitable[None]]

# What the producer and consumers must run with; a test checks the adapter really uses these.
PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,
}
CONSUMER_SETTINGS: dict[str, Any] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "isolation_level": "read_committed",
    # Idle cost: the broker answers a fetch as soon as a record arrives, so a longer long-poll
    # (default 500 ms) adds no latency, only fewer empty round trips; and aiokafka's fetch
    # routine re-plans every partition each consumer_timeout_ms (default 200 ms) when nothing
    # else wakes it (a fetch answered, records consumed, a rebalance all do).
    "fetch_max_wait_ms": 2000,
    "consumer_timeout_ms": 1000,
}
# While the broker is unreachable aiokafka retries metadata, fetches and the coordinator every
# retry_backoff_ms (default 100): ten tries a second per client burn CPU for nothing.
CLIENT_SETTINGS: dict[str, Any] = {"retry_backoff_ms": 500}


def is_fatal_producer_error(exc: BaseException) -> bool:
    """Whether an idempotent producer must be recreated after this error.

    aiokafka marks errors it can retry itself as `retriable`; the rest (OutOfOrderSequenceNumber,
    UnknownProducerId, an expired batch's KafkaTimeoutError, ...) leave the producer's sequence
    state unusable.
    """
    from aiokafka.errors import KafkaError

    if isinstance(exc, KafkaError):
        return not exc.retriable
    return isinstance(exc, TimeoutError)


class Bus(Protocol):
    """The port every service talks to; adapters: InMemoryBus, KafkaBus."""

    async def start(self) -> None:
        """Connect the producer and start every subscribed consumer."""

    async def stop(self) -> None:
        """Stop consumers, flush and close the producer."""

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish in order and return once the broker acknowledged all of them."""

    async def publish_groups(
        self, groups: Sequence[Sequence[OutgoingMessage]]
    ) -> list[tuple[int, BaseException | None]]:
        """Publish groups side by side, each in order; per group, how many were acknowledged in
        order from its first message and the error that stopped the rest (None: all were)."""

    def subscribe(
        self,
        topics: list[str],
        group: str,
        handler: MessageHandler,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        """Register a handler (and optionally a batch handler) for a group; call before start()."""

    async def ping(self) -> bool:
        """Whether the broker answers."""


@dataclass
class _Subscription:
    topics: list[str]
    group: str
    handler: MessageHandler
    batch_handler: BatchHandler | None = None


class PublishFailed(Exception):
    """Some messages of one publish call were not acknowledged.

    `acked` counts the messages acknowledged in order from the first one: a caller that marks
    what was sent marks exactly those (the others go again, after them, in order).
    """

    def __init__(self, acked: int, cause: BaseException) -> None:
        super().__init__(f"{acked} acknowledged, then {type(cause).__name__}: {cause}")
        self.acked, self.cause = acked, cause


MAX_BATCH = 500  # records of one fetch handled in one transaction
LINGER_BELOW = 50  # a fetch with fewer records lingers (KafkaBus linger_ms) for more
LAG_IDLE_S = 15.0  # how often an idle consumer refreshes its lag gauges


class _Offsets:
    """A consumer's offsets of work already kept, committed to Kafka at most every `interval_s`.

    An offset commit is a write on the broker (to `__consumer_offsets`): one per handled batch
    cost the broker about a quarter of its CPU per case. Committing less often loses nothing:
    an offset is added only after its batch's database commit, and what a crash leaves
    uncommitted is read again and skipped by the consumer's inbox, as after any crash between
    the two commits. Pending offsets are committed when the interval has passed, when the
    consumer goes idle, before its partitions are revoked (a rebalance: the next owner starts
    after them) and when the bus stops. `interval_s=0` commits after every batch.
    """

    def __init__(self, consumer: Any, interval_s: float) -> None:
        self.consumer, self.interval_s = consumer, interval_s
        self.pending: dict[Any, int] = {}
        self.at = time.monotonic()

    def wait_ms(self, idle_ms: int) -> int:
        """How long the next fetch may wait for records: no longer than the pending commit."""
        if not self.pending:
            return idle_ms
        left = self.interval_s - (time.monotonic() - self.at)
        return max(0, min(idle_ms, int(left * 1000)))

    async def kept(self, offsets: dict[Any, int]) -> None:
        # a partition revoked while its batch was in its transaction is another member's now:
        # its offset is not ours to commit (the revoke listener already committed what we had)
        owned = self.consumer.assignment()
        self.pending.update({tp: off for tp, off in offsets.items() if tp in owned})
        if time.monotonic() - self.at >= self.interval_s:
            await self.flush()

    async def flush(self, only: set[Any] | None = None) -> None:
        owned = self.consumer.assignment()
        for tp in [tp for tp in self.pending if tp not in owned]:
            # revoked meanwhile: one such partition in a commit fails the whole commit
            del self.pending[tp]
        take = {tp: off for tp, off in self.pending.items() if only is None or tp in only}
        if not take:
            return
        for tp in take:
            del self.pending[tp]
        self.at = time.monotonic()
        try:
            await self.consumer.commit(take)
        except BaseException:
            # commit them with the next batch's (none is newer), if the partition is still ours
            owned = self.consumer.assignment()
            for tp, off in take.items():
                if tp in owned:
                    self.pending.setdefault(tp, off)
            raise


def _seek(consumer: Any, tp: Any, offset: int) -> None:
    """Move a partition's position back; a partition revoked meanwhile needs none (its next
    owner starts from the committed offset, and so would we on getting it back)."""
    from aiokafka.errors import IllegalStateError

    with contextlib.suppress(IllegalStateError):
        consumer.seek(tp, offset)


def _revoke_listener(offsets: _Offsets) -> Any:
    """A rebalance listener that commits the pending offsets of partitions being revoked."""
    from aiokafka import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            with contextlib.suppress(Exception):  # the next owner reads them again: inbox
                await offsets.flush(set(revoked))
            for tp in revoked:  # no longer ours to commit
                offsets.pending.pop(tp, None)

        async def on_partitions_assigned(self, assigned: Any) -> None:
            return None

    return Listener()


# The handler working on the current message; an event dispatcher narrows it to the handler of
# the event's type, so a dead letter names the function that failed.
CURRENT_HANDLER: contextvars.ContextVar[str] = contextvars.ContextVar(
    "fengqiao_current_handler", default=""
)


def handler_name(fn: Callable[..., Any]) -> str:
    """module.Qualified.name of a handler (bound methods included)."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


async def try_batch(sub: _Subscription, msgs: list[Message]) -> bool:
    """Handle one partition's records as one batch; False when there is no batch handler or the
    batch failed (rolled back whole): then the caller replays the records one at a time, so the
    good ones go through and only a poison one reaches the dead-letter topic. A batch that lost
    a write race with another instance (a deadlock, a key inserted first) is tried whole again
    first: it then sees the other's rows."""
    if sub.batch_handler is None:
        return False
    attempt = waits = 0
    while True:
        CURRENT_HANDLER.set("")
        try:
            await sub.batch_handler(msgs)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            metrics.retried(msgs[0].topic)
            if is_unavailable(exc):  # not the records' fault: the batch waits and goes again
                waits += 1
                await wait_for_database(msgs[0].topic, sub.group, waits, exc)
                continue
            detail = db_error_detail(exc)
            if attempt < BATCH_CONFLICT_RETRIES and detail.get("sqlstate") in _CONFLICT_SQLSTATES:
                attempt += 1
                await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)
                continue
            log.warning(
                "batch failed, replaying its records one at a time",
                extra={
                    "topic": msgs[0].topic,
                    "partition": msgs[0].partition,
                    "offset": msgs[0].offset,
                    "records": len(msgs),
                    "group": sub.group,
                    "error": type(exc).__name__,
                    "tries": attempt + 1,
                    **detail,
                },
            )
            return False


BATCH_CONFLICT_RETRIES = 2  # a batch that lost a write race is tried whole this often more
# deadlock, serialization failure, a unique key another transaction inserted first
_CONFLICT_SQLSTATES = {"40P01", "40001", "23505"}


def db_error_detail(exc: BaseException) -> dict[str, str]:
    """The SQLSTATE and constraint name of a database error, if it carries them: what failed,
    never the values (an error's message may quote a row's personal data)."""
    out: dict[str, str] = {}
    for e in error_chain(exc):
        for attr, key in (("sqlstate", "sqlstate"), ("constraint_name", "constraint")):
            value = getattr(e, attr, None)
            if isinstance(value, str) and value and key not in out:
                out[key] = value[:100]
    return out


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """An error and, once each, what it wraps: a driver's error (`orig`), its cause, its
    context."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]


# A database that is away (restarting, failing over, out of connections) or busy past its
# timeout fails every record alike: those records are not poison. A consumer waits for it,
# retrying the same records (a batch whole) with a growing pause, instead of spending their
# attempts in a fraction of a second and dead-lettering them (which would also hold back every
# later entry of their cases in the gated groups). It waits for as long as it takes: the
# handler-retries alert and the consumer lag show it; stopping the service interrupts it.
# SQLSTATE classes: 08 connection exception, 53 insufficient resources, 57P operator
# intervention (admin or crash shutdown, cannot connect now).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")
UNAVAILABLE_FIRST_WAIT_S = 0.1
UNAVAILABLE_MAX_WAIT_S = 5.0


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error says the database could not be reached or was too busy, rather than
    that this record's work failed."""
    import sqlite3

    from sqlalchemy.exc import TimeoutError as PoolTimeout

    for e in error_chain(exc):
        if getattr(e, "connection_invalidated", False):
            return True
        sqlstate = getattr(e, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if isinstance(e, ConnectionError | TimeoutError | PoolTimeout):
            return True
        if isinstance(e, sqlite3.OperationalError) and any(
            word in str(e) for word in ("database is locked", "database is busy")
        ):
            return True
    return False


async def wait_for_database(topic: str, group: str, waits: int, exc: BaseException) -> None:
    """Pause before trying records again while the database is unavailable (see above)."""
    pause = min(UNAVAILABLE_MAX_WAIT_S, UNAVAILABLE_FIRST_WAIT_S * 2 ** (waits - 1))
    if waits == 1 or pause == UNAVAILABLE_MAX_WAIT_S:
        log.warning(
            "database unavailable, waiting to try the records again",
            extra={
                "topic": topic,
                "group": group,
                "waits": waits,
                "pause_s": pause,
                "error": type(exc).__name__,
                **db_error_detail(exc),
            },
        )
    await asyncio.sleep(pause)


class DeadLetterPolicy:
    """Retry a failing message a few times, then send it to `<topic>.dlq` and move on."""

    def __init__(self, bus: Bus, max_attempts: int = 3, backoff_s: float = 0.05) -> None:
        self.bus, self.max_attempts, self.backoff_s = bus, max_attempts, backoff_s
        self.dead_lettered: dict[str, int] = {}  # per consumer group (metrics)

    async def run(self, msg: Message, handler: MessageHandler, group: str = "") -> None:
        """Call the handler; after max_attempts failures dead-letter the raw message."""
        from shared.events import EventDecodeError

        attempt = waits = 0
        while attempt < self.max_attempts:
            attempt += 1
            CURRENT_HANDLER.set(handler_name(handler))
            try:
                await handler(msg)
                return
            except EventDecodeError as exc:  # retrying cannot fix bad bytes
                await self.dead_letter(msg, exc, attempt, group)
                return
            except Exception as exc:
                if is_unavailable(exc):  # no attempt spent: the record is not at fault
                    metrics.retried(msg.topic)
                    attempt -= 1
                    waits += 1
                    await wait_for_database(msg.topic, group, waits, exc)
                    continue
                if attempt == self.max_attempts:
                    await self.dead_letter(msg, exc, attempt, group)
                    return
                metrics.retried(msg.topic)
                log.warning(
                    "handler failed, retrying",
                    extra={
                        "topic": msg.topic,
                        "offset": msg.offset,
                        "attempt": attempt,
                        "error": type(exc).__name__,
                    },
                )
                await asyncio.sleep(self.backoff_s * attempt)

    async def dead_letter(
        self, msg: Message, exc: BaseException, attempts: int, group: str = ""
    ) -> None:
        """Publish the raw bytes with the error, origin, consumer group and handler.

        Several groups read one topic (the trail: intake and follow-up): the group and the
        handler tell a re-drive tool which consumer failed. Never the payload in a header.
        """
        from shared.pii import redact_text

        reason = redact_text(f"{type(exc).__name__}: {exc}")[:500]
        self.dead_lettered[group] = self.dead_lettered.get(group, 0) + 1
        headers: Headers = [
            ("dlq.error", reason.encode()),
            ("dlq.group", group.encode()),
            ("dlq.handler", CURRENT_HANDLER.get().encode()),
            ("dlq.origin.topic", msg.topic.encode()),
            ("dlq.origin.partition", str(msg.partition).encode()),
            ("dlq.origin.offset", str(msg.offset).encode()),
            ("dlq.attempts", str(attempts).encode()),
        ]
        from shared.topics import Topics

        key = msg.key.decode(errors="replace") if msg.key else None
        await self.bus.publish([OutgoingMessage(Topics.dlq(msg.topic), key, msg.value, headers)])
        metrics.dead_lettered(msg.topic)
        log.error(
            "message dead-lettered",
            extra={
                "topic": msg.topic,
                "partition": msg.partition,
                "offset": msg.offset,
                "group": group,
                "handler": CURRENT_HANDLER.get(),
                "reason": reason,
            },
        )


async def _close_quietly(closing: Awaitable[None]) -> None:
    """Await an aiokafka close; its errors, and the CancelledError its fetcher lets escape when
    the broker is gone, must not abort the rest of the shutdown (a cancel of ours still does)."""
    try:
        await closing
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception as exc:
        log.warning("kafka client did not close cleanly", extra={"error": type(exc).__name__})


class InMemoryBus:
    """A bus in process memory: each group gets every message of its topics, in order."""

    def __init__(self, max_attempts: int = 3) -> None:
        self.log: dict[str, list[Message]] = defaultdict(list)
        self._subs: list[_Subscription] = []
        self._queues: dict[int, asyncio.Queue[Message]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.dlq = DeadLetterPolicy(self, max_attempts=max_attempts, backoff_s=0)

    def subscribe(
        self,
        topics: list[str],
        group: str,
        handler: MessageHandler,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        """Register a handler."""
        self._subs.append(_Subscription(topics, group, handler, batch_handler))

    async def start(self) -> None:
        """Start one worker per subscription."""
        for i, sub in enumerate(self._subs):
            if i in self._queues:
                continue
            q: asyncio.Queue[Message] = asyncio.Queue()
            self._queues[i] = q
            for topic in sub.topics:  # replay what was published before start
                for m in self.log[topic]:
                    self._enqueue(q, m)
            self._tasks.append(asyncio.create_task(self._work(sub, q)))

    def _enqueue(self, q: asyncio.Queue[Message], m: Message) -> None:
        self._pending += 1
        self._idle.clear()
        q.put_nowait(m)

    async def _work(self, sub: _Subscription, q: asyncio.Queue[Message]) -> None:
        while True:
            msgs = [await q.get()]  # what has queued up meanwhile goes along, as a fetch would
            while not q.empty() and len(msgs) < MAX_BATCH:
                msgs.append(q.get_nowait())
            try:
                if not await try_batch(sub, msgs):
                    for m in msgs:
                        await self.dlq.run(m, sub.handler, sub.group)
            finally:
                self._pending -= len(msgs)
                if self._pending == 0:
                    self._idle.set()

    async def stop(self) -> None:
        """Cancel the workers."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        self._queues.clear()

    async def publish_groups(
        self, groups: Sequence[Sequence[OutgoingMessage]]
    ) -> list[tuple[int, BaseException | None]]:
        """Each group through publish(): acknowledged counts and errors per group."""
        out: list[tuple[int, BaseException | None]] = []
        for group in groups:
            try:
                await self.publish(group)
                out.append((len(group), None))
            except PublishFailed as exc:
                out.append((exc.acked, exc.cause))
            except Exception as exc:
                out.append((0, exc))
        return out

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Append to the topic logs and hand to subscribers."""
        for om in messages:
            m = Message(
                om.topic,
                0,
                len(self.log[om.topic]),
                om.key.encode() if om.key is not None else None,
                om.value,
                list(om.headers),
            )
            self.log[om.topic].append(m)
            for i, sub in enumerate(self._subs):
                if om.topic in sub.topics and i in self._queues:
                    self._enqueue(self._queues[i], m)

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    async def drain(self, timeout: float = 120.0) -> None:
        """Wait until every delivered message was handled (tests).

        The timeout only guards against a hang; it is not a speed limit: on a loaded machine a
        few hundred events can take longer than a few seconds (a 5 s guard failed tests there)."""
        await asyncio.wait_for(self._idle.wait(), timeout)


class KafkaBus:
    """aiokafka adapter: idempotent acks=all producer; consumers commit after processing."""

    def __init__(
        self,
        bootstrap: str,
        client_id: str,
        max_attempts: int = 3,
        extra_topics: Sequence[str] = (),
        partitions: int = 12,
        replication_factor: int = 0,
        client_options: dict[str, Any] | None = None,
        linger_ms: float = 0.0,
        commit_interval_ms: float = 0.0,
    ) -> None:
        self.bootstrap, self.client_id = bootstrap, client_id
        self.linger_ms = linger_ms
        self.commit_interval_ms = commit_interval_ms
        self._subs: list[_Subscription] = []
        self._extra_topics = list(extra_topics)
        self._partitions = partitions
        self._replication = replication_factor  # 0: min(3, brokers in the cluster)
        self._client_options = dict(client_options or {})  # TLS / SASL
        self.producer: Any = None
        self.producer_generation = 0
        self.producer_resets = 0  # how often a fatal error forced a new producer (metrics)
        self._producer_lock = asyncio.Lock()
        self._stopping = False
        self.consumers: list[Any] = []
        self._offsets: dict[int, _Offsets] = {}  # by id(consumer)
        self._tasks: list[asyncio.Task[None]] = []
        self.dlq = DeadLetterPolicy(self, max_attempts=max_attempts)

    def subscribe(
        self,
        topics: list[str],
        group: str,
        handler: MessageHandler,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        """Register a handler (and a batch handler) for a consumer group."""
        self._subs.append(_Subscription(topics, group, handler, batch_handler))

    def producer_config(self) -> dict[str, Any]:
        """The producer's settings (checked by a test)."""
        return {
            "bootstrap_servers": self.bootstrap,
            "client_id": self.client_id,
            **self._client_options,
            **CLIENT_SETTINGS,
            **PRODUCER_SETTINGS,
        }

    def consumer_config(self, group: str) -> dict[str, Any]:
        """A consumer's settings (checked by a test)."""
        return {
            "bootstrap_servers": self.bootstrap,
            "group_id": group,
            "client_id": f"{self.client_id}-{group}",
            **self._client_options,
            **CLIENT_SETTINGS,
            **CONSUMER_SETTINGS,
        }

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create topics (and their dead-letter topics) that do not exist yet."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, client_id=self.client_id, **self._client_options
        )
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = sorted(
                {t for t in topics} | {f"{t}.dlq" for t in topics if not t.endswith(".dlq")}
            )
            replicas = self._replication
            if replicas <= 0 and any(t not in existing for t in wanted):
                brokers = (await admin.describe_cluster()).get("brokers") or [None]
                replicas = min(3, len(brokers))
            new = [NewTopic(t, self._partitions, replicas) for t in wanted if t not in existing]
            if new:
                with contextlib.suppress(Exception):  # a racing creator is fine
                    await admin.create_topics(new)
        finally:
            await admin.close()

    async def start(self) -> None:
        """Create topics, start the producer and one consumer task per subscription."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        topics = [t for s in self._subs for t in s.topics] + self._extra_topics
        if topics:
            await self.ensure_topics(topics)
        self.producer = AIOKafkaProducer(**self.producer_config())
        await self.producer.start()
        for sub in self._subs:
            consumer = AIOKafkaConsumer(**self.consumer_config(sub.group))
            offsets = _Offsets(consumer, self.commit_interval_ms / 1000)
            self._offsets[id(consumer)] = offsets
            consumer.subscribe(sub.topics, listener=_revoke_listener(offsets))
            await consumer.start()
            self.consumers.append(consumer)
            self._tasks.append(asyncio.create_task(self._consume(consumer, sub)))

    async def _consume(self, consumer: Any, sub: _Subscription) -> None:
        metrics.consuming_in_this_task(self.client_id, sub.group)
        # the lag gauges (a label per partition) are set at most once a second while records
        # flow, and every LAG_IDLE_S when none came (the lag can only grow by records we have
        # not fetched yet, which the fetch brings in with the high-water mark)
        lag_at, busy = 0.0, True
        offsets = self._offsets[id(consumer)]
        while True:
            try:
                # a record arriving ends the wait at once: the timeout only bounds an idle loop
                # (and the wait for a pending offset commit)
                batches = await consumer.getmany(
                    timeout_ms=offsets.wait_ms(2000), max_records=MAX_BATCH
                )
                if not batches:
                    await offsets.flush()
                batches = await self._linger(consumer, batches)
                busy = busy or bool(batches)
                parts = [(tp, self._messages(tp, records)) for tp, records in batches.items()]
                await self._handle_fetch(consumer, sub, parts)
                since = time.monotonic() - lag_at
                if since >= LAG_IDLE_S or (busy and since >= 1.0):
                    metrics.observe_lag(self.client_id, sub.group, consumer)
                    lag_at, busy = time.monotonic(), False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker hiccup: keep consuming, never die silently
                log.error(
                    "consumer loop error", extra={"group": sub.group, "error": type(exc).__name__}
                )
                await asyncio.sleep(1)

    async def _handle_fetch(
        self, consumer: Any, sub: _Subscription, parts: list[tuple[Any, list[Message]]]
    ) -> None:
        """A fetch's records: together, else partition by partition. getmany has moved every
        partition's position past its records, so when handling stops on an error (a dead
        letter the broker did not take, a refused offset commit) each partition not handled
        yet is sought back to its first record: read again, never skipped. (The partition in
        hand seeks itself back to what it did not finish.)"""
        started = 0
        try:
            if len(parts) > 1 and await self._handle_together(consumer, sub, parts):
                return
            for tp, msgs in parts:
                started += 1
                await self._handle_partition(consumer, sub, tp, msgs)
        except BaseException:
            for tp, msgs in parts[started:]:
                _seek(consumer, tp, msgs[0].offset)
            raise

    async def _linger(self, consumer: Any, batches: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
        """A fetch that brought only a few records waits `linger_ms` once for what arrives
        meanwhile: fewer, larger batches (each costs a transaction and an offset commit) for
        a few milliseconds of latency, as a producer's linger does. An idle consumer (nothing
        fetched) and a busy one (a full fetch) do not wait."""
        got = sum(len(r) for r in batches.values())
        if not got or got >= LINGER_BELOW or self.linger_ms <= 0:
            return batches
        await asyncio.sleep(self.linger_ms / 1000)
        more = await consumer.getmany(timeout_ms=0, max_records=MAX_BATCH - got)
        for tp, records in more.items():  # a partition's later records after its earlier
            batches[tp] = [*batches.get(tp, []), *records]
        return batches

    @staticmethod
    def _messages(tp: Any, records: list[Any]) -> list[Message]:
        metrics.batch_received(tp.topic, len(records))
        return [
            Message(r.topic, r.partition, r.offset, r.key, r.value or b"", list(r.headers or []))
            for r in records
        ]

    async def _handle_together(
        self, consumer: Any, sub: _Subscription, parts: list[tuple[Any, list[Message]]]
    ) -> bool:
        """One fetch's records of every partition in one batch (one transaction, one offset
        commit): each partition's records stay in offset order, and a case's records are all
        in one partition. False when it failed (rolled back whole, nothing committed): then
        each partition goes on its own, and a failing one record by record."""
        from aiokafka import TopicPartition

        msgs = [m for _, part in parts for m in part]
        t0 = time.perf_counter()
        if not await try_batch(sub, msgs):
            return False
        each = (time.perf_counter() - t0) / len(msgs)
        for m in msgs:
            metrics.record_handled(m.topic, each)
        await self._offsets[id(consumer)].kept(
            {TopicPartition(tp.topic, tp.partition): part[-1].offset + 1 for tp, part in parts}
        )
        return True

    async def _handle_partition(
        self, consumer: Any, sub: _Subscription, tp: Any, msgs: list[Message]
    ) -> None:
        """One partition's records: as one batch, or one by one through the dead-letter path
        when the batch fails; commits what was processed and rewinds to what was not."""
        from aiokafka import TopicPartition

        done = None
        try:
            t0 = time.perf_counter()
            if await try_batch(sub, msgs):
                each = (time.perf_counter() - t0) / len(msgs)
                for m in msgs:
                    metrics.record_handled(m.topic, each)
                done = msgs[-1].offset
            else:
                for m in msgs:
                    t0 = time.perf_counter()
                    await self.dlq.run(m, sub.handler, sub.group)
                    metrics.record_handled(m.topic, time.perf_counter() - t0)
                    done = m.offset
        finally:
            if done != msgs[-1].offset:  # rewind first (a commit below may raise): read again
                _seek(consumer, tp, msgs[0].offset if done is None else done + 1)
            if done is not None:
                # commit only what was processed and persisted
                await self._offsets[id(consumer)].kept(
                    {TopicPartition(tp.topic, tp.partition): done + 1}
                )

    async def stop(self) -> None:
        """Stop consumers first (no new work), then flush the producer."""
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for c in self.consumers:  # what was kept and not yet committed
            with contextlib.suppress(Exception):
                await self._offsets[id(c)].flush()
        # together: with the broker gone each one waits out its own leave-group request
        await asyncio.gather(*(_close_quietly(c.stop()) for c in self.consumers))
        if self.producer is not None:
            await _close_quietly(self.producer.stop())
        self._tasks.clear()
        self.consumers.clear()
        self._offsets.clear()
        self.producer = None
        self._stopping = False

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send in order, then wait for every acknowledgement.

        A fatal producer error (an out-of-order sequence, an expired batch, any error the
        idempotent producer cannot retry) leaves the producer's sequence numbers out of step
        with the broker: every later send would fail the same way. The producer is closed and
        recreated, then the error is raised so the caller retries with the new one.
        """
        [(acked, error)] = await self.publish_groups([messages])
        if error is None:
            return
        if acked:
            raise PublishFailed(acked, error) from error
        raise error

    async def publish_groups(
        self, groups: Sequence[Sequence[OutgoingMessage]]
    ) -> list[tuple[int, BaseException | None]]:
        """Send every group (each in order; a send that fails stops the rest of its group),
        then wait for all the acknowledgements at once: one coroutine for the relay's whole
        batch instead of one task per case. Per group: how many were acknowledged in order from
        its first message, and the first error (None when all were). A fatal producer error
        recreates the producer once every acknowledgement of the attempt has settled."""
        await self._ensure_producer()
        producer, generation = self.producer, self.producer_generation
        sent: list[list[Any]] = []
        errors: list[BaseException | None] = []
        for group in groups:
            futures: list[Any] = []
            error: BaseException | None = None
            try:
                for m in group:
                    futures.append(
                        await producer.send(
                            m.topic,
                            m.value,
                            key=m.key.encode() if m.key is not None else None,
                            headers=m.headers or None,
                        )
                    )
            except Exception as exc:
                error = exc
            sent.append(futures)
            errors.append(error)
        out: list[tuple[int, BaseException | None]] = []
        fatal: BaseException | None = None
        for futures, error in zip(sent, errors, strict=True):
            acked, broken = 0, False  # acknowledged in order from the first message
            for f in futures:
                try:
                    await f
                    acked += 0 if broken else 1
                except Exception as exc:
                    broken, error = True, error or exc
            if error is not None and fatal is None and is_fatal_producer_error(error):
                fatal = error
            out.append((acked, error))
        if fatal is not None:
            await self.reset_producer(generation, fatal)
        return out

    async def reset_producer(self, generation: int, cause: BaseException | None = None) -> None:
        """Close and recreate the producer, unless another caller already did since `generation`."""
        from aiokafka import AIOKafkaProducer

        async with self._producer_lock:
            if generation != self.producer_generation or self._stopping:
                return
            old = self.producer
            self.producer_resets += 1
            log.warning(
                "producer recreated after a fatal error",
                extra={"error": type(cause).__name__ if cause else None},
            )
            producer = AIOKafkaProducer(**self.producer_config())
            try:
                await producer.start()
            except Exception:
                with contextlib.suppress(Exception):
                    await producer.stop()
                self.producer = None  # the next publish tries again
                raise
            self.producer = producer
            self.producer_generation += 1
            if old is not None:
                # sends already in flight on the old producer settle first (acknowledged or
                # failed), so no acknowledgement is lost and nothing acknowledged is resent
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(old.flush(), 30)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(old.stop(), 10)

    async def _ensure_producer(self) -> None:
        if self.producer is None and not self._stopping:
            await self.reset_producer(self.producer_generation)

    async def ping(self) -> bool:
        """Whether the broker answers a metadata request."""
        if self.producer is None:
            return False
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), 3)
            return True
        except Exception:
            return False
