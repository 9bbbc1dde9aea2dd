"""Outbox, inbox, trail and dead letters on the in-memory bus and SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.bus import InMemoryBus, Message
from shared.contracts import CaseClosed
from shared.db import Delivery, OutboxRelay, Tx, delivery_tables, make_engine
from shared.events import Envelope
from shared.topics import Topics


class Base(SQLModel, registry=registry()):
    pass


TABLES = delivery_tables(Base)
TOPICS = Topics("u.")


@pytest.fixture
async def delivery(tmp_path: Path) -> AsyncIterator[Delivery]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield Delivery(
        async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False),
        TABLES,
        "test",
        TOPICS.trail,
    )
    await engine.dispose()


async def test_state_trail_and_outbox_commit_together_or_not_at_all(delivery: Delivery) -> None:
    async with delivery.transaction() as tx:
        tx.transition(
            "c1",
            action="fail",
            from_status="follow_up",
            to_status="closed",
            actor="system:test",
            reason="honoured",
        )
        tx.emit(TOPICS.followup, "case.closed", CaseClosed(case_id="c1", outcome="ok"), "c1")
    with pytest.raises(RuntimeError):
        async with delivery.transaction() as tx:
            tx.emit(TOPICS.followup, "case.closed", CaseClosed(case_id="c2", outcome="x"), "c2")
            raise RuntimeError("handler failed after emitting")
    async with delivery.sessions() as s:
        outbox = (await s.exec(select(TABLES.outbox))).all()
        trail = (await s.exec(select(TABLES.trail))).all()
    assert [(r.topic, r.key) for r in outbox] == [
        ("u.cases.trail", "c1"),
        ("u.cases.followup", "c1"),
    ]
    assert [(t.case_id, t.from_status, t.to_status) for t in trail] == [
        ("c1", "follow_up", "closed")
    ]


async def test_relay_publishes_in_order_once_and_marks_rows(delivery: Delivery) -> None:
    bus = InMemoryBus()
    for i in range(3):
        async with delivery.transaction() as tx:
            tx.emit(
                TOPICS.followup, "case.closed", CaseClosed(case_id=f"c{i}", outcome="ok"), f"c{i}"
            )
    relay = OutboxRelay(delivery, bus)
    assert await relay.publish_pending() == 3
    assert await relay.publish_pending() == 0
    got = [Envelope.from_bytes(m.value).case_id for m in bus.log[TOPICS.followup]]
    assert got == ["c0", "c1", "c2"]
    assert [m.key for m in bus.log[TOPICS.followup]] == [b"c0", b"c1", b"c2"]


async def test_inbox_skips_an_event_seen_before(delivery: Delivery) -> None:
    env = Envelope(
        event_type="case.closed",
        producer="x",
        case_id="c",
        correlation_id="k",
        payload={"case_id": "c", "outcome": "ok"},
    )
    calls: list[str] = []

    async def work(tx: Tx) -> None:
        calls.append(env.event_id)
        tx.transition(
            "c", action="fail", from_status="follow_up", to_status="closed", actor="system:test"
        )

    assert await delivery.handle_once("svc", env, work) is True
    assert await delivery.handle_once("svc", env, work) is False
    assert await delivery.handle_once("other-consumer", env, work) is True
    async with delivery.sessions() as s:
        trail = (await s.exec(select(TABLES.trail))).all()
    assert len(trail) == 2 and len(calls) == 2


async def test_failing_handler_goes_to_dead_letter_and_the_topic_moves_on() -> None:
    bus = InMemoryBus(max_attempts=3)
    handled: list[bytes] = []
    attempts = {"n": 0}

    async def handler(msg: Message) -> None:
        if msg.value == b"poison":
            attempts["n"] += 1
            raise ValueError("cannot handle 13912345678")
        handled.append(msg.value)

    bus.subscribe(["in"], "g", handler)
    await bus.start()
    from shared.bus import OutgoingMessage

    await bus.publish([OutgoingMessage("in", "k", b"poison"), OutgoingMessage("in", "k", b"ok")])
    await bus.drain()
    await bus.stop()
    assert attempts["n"] == 3 and handled == [b"ok"]
    [dead] = bus.log["in.dlq"]
    headers = dict(dead.headers)
    assert dead.value == b"poison"
    assert headers["dlq.origin.topic"] == b"in" and headers["dlq.origin.offset"] == b"0"
    assert b"ValueError" in headers["dlq.error"] and b"13912345678" not in headers["dlq.error"]


async def test_undecodable_event_is_dead_lettered_without_retries() -> None:
    from shared.events import EventDecodeError

    bus = InMemoryBus(max_attempts=5)
    attempts = {"n": 0}

    async def handler(msg: Message) -> None:
        attempts["n"] += 1
        Envelope.from_bytes(msg.value)

    bus.subscribe(["in"], "g", handler)
    await bus.start()
    from shared.bus import OutgoingMessage

    await bus.publish([OutgoingMessage("in", None, b"{not json")])
    await bus.drain()
    await bus.stop()
    assert attempts["n"] == 1 and len(bus.log["in.dlq"]) == 1
    assert EventDecodeError.__name__.encode() in dict(bus.log["in.dlq"][0].headers)["dlq.error"]


class FlakyBus(InMemoryBus):
    """An in-memory bus whose sends of chosen keys fail a number of times."""

    def __init__(self, failures: dict[str, int]) -> None:
        super().__init__()
        self.failures = dict(failures)
        self.sent_keys: list[str | None] = []

    async def publish(self, messages):  # type: ignore[no-untyped-def]
        for m in messages:
            if self.failures.get(m.key or "", 0) > 0:
                self.failures[m.key or ""] -= 1
                raise ConnectionError(f"broker refused {m.key}")
        self.sent_keys.extend(m.key for m in messages)
        await super().publish(messages)


async def _emit(delivery: Delivery, case_id: str, n: int) -> None:
    for _ in range(n):
        async with delivery.transaction() as tx:
            tx.emit(
                TOPICS.followup, "case.closed", CaseClosed(case_id=case_id, outcome="ok"), case_id
            )


async def test_a_failed_relay_attempt_keeps_what_was_acknowledged_and_stops_that_case(
    delivery: Delivery,
) -> None:
    from shared.db import RelayStalled

    await _emit(delivery, "a", 2)
    await _emit(delivery, "b", 3)
    await _emit(delivery, "a", 1)
    async with delivery.sessions() as s:
        rows = (await s.exec(select(TABLES.outbox).order_by(TABLES.outbox.id))).all()
    bus = FlakyBus({"b": 1})
    relay = OutboxRelay(delivery, bus)
    with pytest.raises(RelayStalled):
        await relay.publish_pending()
    # a's rows went out and are deleted; none of b's later rows overtook its failed first one
    assert bus.sent_keys == ["a", "a", "a"]
    async with delivery.sessions() as s:
        left = (await s.exec(select(TABLES.outbox.key).order_by(TABLES.outbox.id))).all()
    assert left == ["b", "b", "b"]
    assert relay.failed_attempts_total == 1 and not relay.stalled
    assert await relay.publish_pending() == 3
    assert bus.sent_keys == ["a", "a", "a", "b", "b", "b"]
    assert await relay.publish_pending() == 0
    async with delivery.sessions() as s:
        assert (await s.exec(select(TABLES.outbox))).all() == []
    # each case's events on the topic in outbox order, each exactly once
    by_case: dict[str, list[str]] = {}
    for m in bus.log[TOPICS.followup]:
        env = Envelope.from_bytes(m.value)
        by_case.setdefault(env.case_id, []).append(env.event_id)
    assert by_case == {c: [r.event_id for r in rows if r.key == c] for c in ("a", "b")}


async def test_a_relay_that_cannot_make_progress_says_so(delivery: Delivery) -> None:
    from shared.db import RelayStalled

    await _emit(delivery, "a", 1)
    bus = FlakyBus({"a": OutboxRelay.STALL_AFTER})
    relay = OutboxRelay(delivery, bus)
    for _ in range(OutboxRelay.STALL_AFTER):
        assert not relay.stalled
        with pytest.raises(RelayStalled):
            await relay.publish_pending()
    assert relay.stalled and relay.attempts_without_progress == OutboxRelay.STALL_AFTER
    assert relay.last_error == "ConnectionError"
    assert await relay.publish_pending() == 1
    assert not relay.stalled and relay.published_total == 1


async def test_an_idle_relay_backs_off_and_a_commit_still_wakes_it_at_once(
    delivery: Delivery,
) -> None:
    import asyncio

    relay = OutboxRelay(delivery, InMemoryBus(), interval_s=0.5)
    # polls that find nothing wait longer and longer, up to ten intervals (at most 5 s)
    assert [relay.next_wait(i) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert OutboxRelay(delivery, InMemoryBus(), interval_s=0.02).idle_max_s == 0.2
    assert OutboxRelay(delivery, InMemoryBus(), interval_s=9.0).idle_max_s == 9.0

    bus = InMemoryBus()
    relay = OutboxRelay(delivery, bus, interval_s=0.01, idle_max_s=3600)
    relay.idle_polls = 40  # long idle: its next poll is an hour away
    relay.start()

    async def until(cond: Callable[[], bool]) -> None:
        async with asyncio.timeout(60):  # a hang guard only
            while not cond():  # noqa: ASYNC110 - the relay has no event to wait on for this
                await asyncio.sleep(0.01)

    try:
        await until(lambda: relay.idle_polls > 40)  # it polled once more, found nothing, waits
        await _emit(delivery, "w", 1)  # the commit wakes it: no poll needed
        await until(lambda: bool(bus.log[TOPICS.followup]) and relay.idle_polls == 0)
    finally:
        await relay.stop()
    assert [Envelope.from_bytes(m.value).case_id for m in bus.log[TOPICS.followup]] == ["w"]


async def test_a_lingering_relay_publishes_commits_close_together_in_one_call(
    delivery: Delivery,
) -> None:
    import asyncio

    calls: list[int] = []

    class CountingBus(InMemoryBus):
        async def publish_groups(self, groups: Any) -> Any:
            calls.append(sum(len(g) for g in groups))
            return await super().publish_groups(groups)

    bus = CountingBus()
    relay = OutboxRelay(delivery, bus, interval_s=0.01, idle_max_s=3600, linger_s=1.0)
    relay.idle_polls = 40  # long idle: only a commit wakes it
    relay.start()
    try:
        await _emit(delivery, "a", 1)  # wakes the relay, which then waits a second for more
        await _emit(delivery, "b", 1)
        async with asyncio.timeout(60):  # a hang guard only
            while len(bus.log[TOPICS.followup]) < 2:  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.01)
    finally:
        await relay.stop()
    assert calls == [2]  # both commits' rows in one publish
    assert [Envelope.from_bytes(m.value).case_id for m in bus.log[TOPICS.followup]] == ["a", "b"]


class Note(Base, table=True):
    """A plain append-only table for add_rows."""

    __tablename__ = "notes"
    id: int = Field(primary_key=True)
    case_id: str = Field(max_length=64)
    text: str = Field(max_length=64)


async def test_add_rows_are_written_with_the_transaction_or_not_at_all(
    delivery: Delivery,
) -> None:
    async with delivery.transaction() as tx:
        tx.add_rows(Note, [{"id": 1, "case_id": "c1", "text": "alone"}])
    with pytest.raises(RuntimeError):
        async with delivery.transaction() as tx:
            tx.add_rows(Note, [{"id": 2, "case_id": "c2", "text": "rolled back"}])
            raise RuntimeError("handler failed after queueing rows")
    # in a batch: every event's rows land at the batch's commit, in order; a failed batch
    # keeps none of them
    async with delivery.batch([]):
        for i in (3, 4):
            async with delivery.transaction() as tx:
                table = Note.__table__  # type: ignore[attr-defined]
                tx.add_rows(table, [{"id": i, "case_id": f"c{i}", "text": "batch"}])
    with pytest.raises(RuntimeError):
        async with delivery.batch([]):
            async with delivery.transaction() as tx:
                tx.add_rows(Note, [{"id": 5, "case_id": "c5", "text": "lost batch"}])
            raise RuntimeError("the batch failed after an event queued rows")
    async with delivery.sessions() as s:
        notes = (await s.exec(select(Note).order_by(Note.id))).all()  # type: ignore[arg-type]
    assert [(n.id, n.case_id, n.text) for n in notes] == [
        (1, "c1", "alone"),
        (3, "c3", "batch"),
        (4, "c4", "batch"),
    ]


async def test_a_batch_runs_its_before_commit_work_after_its_rows_in_its_transaction(
    delivery: Delivery,
) -> None:
    from sqlalchemy import update

    table = Note.__table__  # type: ignore[attr-defined]

    async def touch(session: Any) -> None:  # sees the rows the batch queued, and is kept
        conn = await session.connection()
        await conn.execute(update(table).where(table.c.id >= 10).values(text="kept up to date"))

    async with delivery.batch([]) as batch:
        async with delivery.transaction() as tx:
            tx.add_rows(Note, [{"id": 10, "case_id": "c10", "text": "queued"}])
        batch.before_commit(touch)
    with pytest.raises(RuntimeError):
        async with delivery.batch([]) as batch:
            async with delivery.transaction() as tx:
                tx.add_rows(Note, [{"id": 11, "case_id": "c11", "text": "queued"}])
            batch.before_commit(touch)
            raise RuntimeError("the batch failed: its before-commit work never runs")
    async with delivery.sessions() as s:
        notes = (await s.exec(select(Note).where(Note.id >= 10))).all()
    assert [(n.id, n.text) for n in notes] == [(10, "kept up to date")]
