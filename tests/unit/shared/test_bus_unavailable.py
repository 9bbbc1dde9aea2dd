"""A database that is away or busy is waited for: its records are not poison.

Before, a record whose handler failed because the database was restarting spent its three
attempts in 0.15 s and went to the dead-letter topic (and, in a gated group, held back every
later entry of its case). Now such failures spend no attempt: the same records are tried again
after a growing pause until the database answers; a failure of the record's own work is still
dead-lettered after its attempts.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from shared import bus as bus_module
from shared.bus import InMemoryBus, Message, OutgoingMessage, is_unavailable

TOPIC = "t.work"


class PgError(Exception):
    """What asyncpg raises: an error carrying its SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def locked() -> OperationalError:
    return OperationalError("UPDATE x", {}, sqlite3.OperationalError("database is locked"))


def shutting_down() -> DBAPIError:
    return DBAPIError("SELECT 1", {}, PgError("57P01"))  # admin_shutdown: a restart


@pytest.fixture(autouse=True)
def no_pauses() -> Iterator[None]:
    first = bus_module.UNAVAILABLE_FIRST_WAIT_S
    bus_module.UNAVAILABLE_FIRST_WAIT_S = 0.0
    yield
    bus_module.UNAVAILABLE_FIRST_WAIT_S = first


def test_what_counts_as_the_database_being_away() -> None:
    assert is_unavailable(locked()) and is_unavailable(shutting_down())
    assert is_unavailable(DBAPIError("SELECT 1", {}, PgError("08006")))  # connection failure
    assert is_unavailable(DBAPIError("SELECT 1", {}, PgError("53300")))  # too many connections
    assert is_unavailable(ConnectionRefusedError(111, "refused"))
    invalidated = DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert is_unavailable(invalidated)
    try:
        try:
            raise locked()
        except OperationalError as inner:
            raise RuntimeError("the handler's own wrapper") from inner
    except RuntimeError as outer:
        assert is_unavailable(outer)  # found down the cause chain
    # the record's own work failing: a constraint, a missing table, a bug
    assert not is_unavailable(DBAPIError("INSERT", {}, PgError("23505")))
    assert not is_unavailable(OperationalError("x", {}, sqlite3.OperationalError("no such table")))
    assert not is_unavailable(ValueError("bad payload"))


async def test_a_record_waits_out_the_database_and_is_handled_not_dead_lettered() -> None:
    bus = InMemoryBus(max_attempts=3)
    failures = [locked(), shutting_down(), locked(), locked(), shutting_down()]
    handled: list[bytes] = []

    async def handle(msg: Message) -> None:
        if failures:
            raise failures.pop(0)
        handled.append(msg.value)

    bus.subscribe([TOPIC], "g", handle)
    await bus.start()
    try:
        await bus.publish([OutgoingMessage(TOPIC, "c1", b"one")])
        await asyncio.wait_for(bus.drain(), 10)
        assert handled == [b"one"]  # five failures, more than its three attempts
        assert bus.log.get(f"{TOPIC}.dlq", []) == []
    finally:
        await bus.stop()


async def test_a_batch_waits_whole_and_a_poison_record_is_still_dead_lettered() -> None:
    bus = InMemoryBus(max_attempts=3)
    failures = [ConnectionRefusedError(111, "refused"), locked()]
    batches: list[list[bytes]] = []
    one_by_one: list[bytes] = []

    async def handle_batch(msgs: list[Message]) -> None:
        if failures:
            raise failures.pop(0)
        if any(m.value == b"poison" for m in msgs):
            raise ValueError("cannot handle this record")
        batches.append([m.value for m in msgs])

    async def handle(msg: Message) -> None:
        if msg.value == b"poison":
            raise ValueError("cannot handle this record")
        one_by_one.append(msg.value)

    bus.subscribe([TOPIC], "g", handle, handle_batch)
    await bus.publish([OutgoingMessage(TOPIC, "c1", v) for v in (b"a", b"b", b"c")])
    await bus.start()
    try:
        await asyncio.wait_for(bus.drain(), 10)
        assert batches == [[b"a", b"b", b"c"]] and one_by_one == []  # waited, then whole
        await bus.publish([OutgoingMessage(TOPIC, "c2", v) for v in (b"poison", b"d")])
        await asyncio.wait_for(bus.drain(), 10)
        [letter] = bus.log[f"{TOPIC}.dlq"]
        assert letter.value == b"poison" and one_by_one == [b"d"]
    finally:
        await bus.stop()


async def test_stopping_interrupts_the_wait_and_dead_letters_nothing() -> None:
    bus_module.UNAVAILABLE_FIRST_WAIT_S = 0.05
    bus = InMemoryBus(max_attempts=3)
    tried = asyncio.Event()

    async def handle(msg: Message) -> None:
        tried.set()
        raise shutting_down()  # the database never comes back

    bus.subscribe([TOPIC], "g", handle)
    await bus.start()
    await bus.publish([OutgoingMessage(TOPIC, "c1", b"one")])
    await asyncio.wait_for(tried.wait(), 10)
    await asyncio.sleep(0.3)  # several waits
    await asyncio.wait_for(bus.stop(), 10)
    assert bus.log.get(f"{TOPIC}.dlq", []) == []
