"""SQLite on the event loop's own thread: aiosqlite's API without its worker thread.

aiosqlite runs every statement on a thread of its own and wakes the event loop when it is
done: two thread switches and a loop wake-up per statement, which the profile showed as a
third of a service's CPU per case (the statements themselves take microseconds). Here the
statement runs where it is awaited. Two things a worker thread gave for free are kept:

- **No blocking wait for a lock.** SQLite would sleep in its busy handler when another
  connection holds the write lock, and on the loop's thread that would stop the very
  transaction holding it. So connections of one database file in this process take turns
  at writing through an asyncio lock (held from a transaction's first write to its end),
  and SQLite's busy timeout is 0: a lock held by another *process* (a CLI, a second
  instance) is waited for with asyncio sleeps, not in SQLite.
- **Nothing else changes.** Same sqlite3 connection, pragmas, transactions and errors;
  SQLAlchemy's aiosqlite dialect uses it through `async_creator_fn`.

A long read (a dashboard query over many rows) now holds the loop while it runs; the
services' reads are index seeks, and `FENGQIAO_SQLITE_THREAD=1` brings the thread back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import aiosqlite

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN", "SAVEPOI", "CREATE", "DROP", "ALTER")
_BUSY_WAIT_S = 30.0  # as long as the threaded driver's busy timeout

# One write lock per database file per event loop (a test may run several loops in turn).
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _write_lock(database: str) -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    per_loop = _LOCKS.setdefault(loop, {})
    lock = per_loop.get(database)
    if lock is None:
        lock = per_loop[database] = asyncio.Lock()
    return lock


def _is_write(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    name = getattr(fn, "__name__", "")
    if name not in ("execute", "executemany", "executescript") or not args:
        return False
    sql = args[0]
    return isinstance(sql, str) and sql.lstrip()[:7].upper().startswith(_WRITES)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class _InlineQueue:
    """Stands in for the worker's queue: SQLAlchemy's dialect puts work there directly."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as e:  # noqa: BLE001 — handed to the waiter, as the worker does
            if future is not None and not future.done():
                future.set_exception(e)
            return
        if future is not None and not future.done():
            future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run on the caller's thread (see the module doc)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], database: str) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _InlineQueue()  # type: ignore[assignment]
        # An in-memory database is this connection's own: its lock is too.
        self._database = database if database not in ("", ":memory:") else f":memory:{id(self)}"
        self._lock: asyncio.Lock | None = None  # held while this connection writes

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._connect_inline().__await__()

    async def _connect_inline(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def stop(self) -> asyncio.Future[Any] | None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._release()
        return None

    async def close(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.close()
        finally:
            self._connection = None
            self._running = False
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release()

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        conn = self._connection
        if self._lock is None and not conn.in_transaction and _is_write(fn, args):
            lock = _write_lock(self._database)
            try:
                await asyncio.wait_for(lock.acquire(), _BUSY_WAIT_S)
            except TimeoutError:
                # What SQLite's busy timeout said before: another connection never let go.
                raise sqlite3.OperationalError("database is locked") from None
            self._lock = lock
        try:
            return await self._run(conn, partial(fn, *args, **kwargs))
        finally:
            if self._lock is not None and not (self._connection and conn.in_transaction):
                self._release()

    async def _run(self, conn: sqlite3.Connection, call: Callable[[], Any]) -> Any:
        """Run the call; a lock held by another process is waited for without blocking."""
        deadline, pause = time.monotonic() + _BUSY_WAIT_S, 0.001
        while True:
            opens = not conn.in_transaction  # this statement begins the transaction
            try:
                return call()
            except sqlite3.OperationalError as e:
                # Only the statement that opened the transaction can run again: nothing was
                # read or written before it, so the transaction is begun afresh.
                if not _is_busy(e) or not opens or time.monotonic() > deadline:
                    raise
                if conn.in_transaction:
                    conn.rollback()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)


def inline_creator(database: str, **kwargs: Any) -> InlineConnection:
    """`async_creator_fn` for SQLAlchemy's aiosqlite dialect."""
    kwargs.pop("timeout", None)
    kwargs.setdefault("check_same_thread", False)
    connector = partial(sqlite3.connect, database, timeout=0, **kwargs)
    return InlineConnection(connector, database)
