"""SQLite on the event loop's thread: writers take turns without stopping the loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import make_engine
from shared.sqlite_inline import InlineConnection


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    async with eng.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
    yield eng
    await eng.dispose()


class Ticker:
    """Counts while it runs: proof that the event loop was not held."""

    def __init__(self) -> None:
        self.ticks = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.ticks += 1

    def stop(self) -> None:
        self.task.cancel()


async def rows(engine: AsyncEngine) -> list[tuple[int, str]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text("SELECT id, who FROM t ORDER BY id")))]


async def test_the_engine_runs_sqlite_inline(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, InlineConnection)


async def test_a_second_writer_waits_for_the_first_without_holding_the_loop(
    engine: AsyncEngine,
) -> None:
    first_holds = asyncio.Event()
    release_first = asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (id, who) VALUES (1, 'first')"))
            first_holds.set()
            await release_first.wait()  # the write lock is held across this await
            order.append("first commits")

    async def second() -> None:
        await first_holds.wait()
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (id, who) VALUES (2, 'second')"))
            order.append("second wrote")

    ticker = Ticker()
    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await first_holds.wait()
    await asyncio.sleep(0.2)
    ticks_while_waiting = ticker.ticks
    assert order == []  # the second writer waits for the lock, not in SQLite's busy handler
    release_first.set()
    await asyncio.gather(*tasks)
    ticker.stop()
    assert ticks_while_waiting >= 5
    assert order == ["first commits", "second wrote"]
    assert await rows(engine) == [(1, "first"), (2, "second")]


async def test_a_failed_write_lets_the_next_writer_in(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (id, who) VALUES (1, 'a')"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (id, who) VALUES (1, 'again')"))
    async with engine.begin() as conn:  # would wait forever if the lock had been kept
        await asyncio.wait_for(conn.execute(text("INSERT INTO t (id, who) VALUES (2, 'b')")), 5)
    assert await rows(engine) == [(1, "a"), (2, "b")]


async def test_a_lock_held_by_another_process_is_waited_for_with_the_loop_running(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (id, who) VALUES (1, 'other process')")
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, other.execute, "COMMIT")
    ticker = Ticker()
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (id, who) VALUES (2, 'service')"))
    ticker.stop()
    other.close()
    assert ticker.ticks >= 10  # the 0.3 s were spent in asyncio sleeps
    assert await rows(engine) == [(1, "other process"), (2, "service")]


async def test_in_memory_databases_do_not_share_a_lock() -> None:
    one, two = make_engine("sqlite+aiosqlite://"), make_engine("sqlite+aiosqlite://")
    try:
        async with one.begin() as a:
            await a.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            await a.execute(text("INSERT INTO t VALUES (1)"))
            # while `one` writes, `two` (another database) writes too, not waiting for `one`
            async with two.begin() as b:
                await b.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
                await asyncio.wait_for(b.execute(text("INSERT INTO t VALUES (7)")), 5)
        async with two.connect() as b:
            assert (await b.execute(text("SELECT id FROM t"))).scalars().all() == [7]
    finally:
        await one.dispose()
        await two.dispose()
