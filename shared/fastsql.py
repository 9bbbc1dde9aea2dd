"""The plumbing's statements on SQLite, run on the driver's connection without SQLAlchemy's
per-statement machinery.

A consumer batch of one event runs about ten plumbing statements (inbox and trail-head reads,
one insert per table, the relay's read and mark). Through SQLAlchemy each costs 60–90 µs of
CPU before SQLite sees it (execution context, parameter processing, the async bridge's
greenlet), against 2–5 µs for the statement itself; at a steady rate, where batches are small,
that was most of a service's CPU per case. Here the same statements are compiled once per
table and shape by SQLAlchemy (same SQL, same bind processors: a value is stored exactly as
the ORM stores it) and run on the session's own DBAPI connection, inside its transaction.

Only SQLite takes this path; on PostgreSQL every function here runs the SQLAlchemy statement
(`None` from `driver()`), so the two dialects share one behaviour. Writes go through the
inline connection's `_execute`, which takes the in-process write lock as every other
statement does (shared.sqlite_inline).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

_CHUNK = 500  # ids per IN list (SQLite allows 32,766 parameters)


def driver(conn: AsyncConnection) -> Any | None:
    """The aiosqlite connection under an SQLAlchemy connection on SQLite, else None."""
    if conn.dialect.name != "sqlite":
        return None
    return conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]


def _fetch_all(sqlite_conn: Any, sql: str, params: Sequence[Any]) -> list[Any]:
    rows: list[Any] = sqlite_conn.execute(sql, params).fetchall()
    return rows


@functools.cache
def _select_sql(
    table: Any, columns: tuple[str, ...], key: str, equal: tuple[str, ...], n: int
) -> tuple[str, tuple[Any, ...]]:
    """SELECT columns FROM table WHERE key IN (?, …n) [AND column = ? …]; the columns' result
    processors (None where a value needs none)."""
    c = table.c
    q = ", ".join(f'"{name}"' for name in columns)
    where = f'"{key}" IN ({", ".join("?" * n)})'
    for name in equal:
        where += f' AND "{name}" = ?'
    return f'SELECT {q} FROM "{table.name}" WHERE {where}', tuple(c[name].type for name in columns)


@functools.cache
def _processors(dialect: Dialect, types: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(t._cached_result_processor(dialect, None) for t in types)


def _processed(rows: list[Any], procs: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    if not any(procs):
        return rows
    return [
        tuple(p(v) if p is not None else v for p, v in zip(procs, row, strict=True)) for row in rows
    ]


async def select_in(
    conn: AsyncConnection,
    table: Any,
    columns: tuple[str, ...],
    key: str,
    ids: Iterable[Any],
    lock: bool = False,
    **equal: Any,
) -> list[tuple[Any, ...]]:
    """Rows (`columns`) of `table` whose `key` is one of `ids` and whose `equal` columns have
    those values; in chunks of 500 ids. `lock`: the rows are locked until the transaction
    ends (FOR UPDATE; SQLite has no row locks: its writers take the database's)."""
    wanted = sorted(set(ids))
    out: list[tuple[Any, ...]] = []
    if not wanted:
        return out
    names = tuple(equal)
    raw = driver(conn)
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        if raw is None:
            rows = await conn.execute(
                _in_statement(table, columns, key, names, lock), {"ids": chunk, **equal}
            )
            out.extend(tuple(r) for r in rows.all())
            continue
        sql, types = _select_sql(table, columns, key, names, len(chunk))
        found = await raw._execute(
            _fetch_all, raw._connection, sql, (*chunk, *(equal[n] for n in names))
        )
        out.extend(_processed(found, _processors(conn.dialect, types)))
    return out


@functools.cache
def _in_statement(
    table: Any, columns: tuple[str, ...], key: str, equal: tuple[str, ...], lock: bool = False
) -> Any:
    c = table.c
    stmt = select(*(c[name] for name in columns)).where(
        c[key].in_(bindparam("ids", expanding=True))
    )
    for name in equal:
        stmt = stmt.where(c[name] == bindparam(name))
    return stmt.with_for_update() if lock else stmt


async def fetch(
    conn: AsyncConnection, stmt: Any, params: Mapping[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """The rows of a SELECT whose parameters are all bound (no expanding IN)."""
    raw = driver(conn)
    if raw is None:
        return [tuple(r) for r in (await conn.execute(stmt, dict(params or {}))).all()]
    c = _compiled(stmt, None, conn.dialect)
    rows = await raw._execute(_fetch_all, raw._connection, c.sql, c.params([params or {}])[0])
    types = tuple(col.type for col in stmt.selected_columns)
    return _processed(rows, _processors(conn.dialect, types))


class _Compiled:
    """A write statement compiled once for SQLite: its SQL, and per positional parameter the
    row key, bind processor and constant default (the ORM's own conversions)."""

    def __init__(self, stmt: Any, keys: tuple[str, ...] | None, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if keys else None)
        self.sql: str = compiled.string
        procs = compiled._bind_processors
        defaults: dict[str, Any] = {}
        self.plain = True  # every value is the row's own or a constant
        for col in getattr(compiled, "insert_prefetch", ()):
            d = col.default
            if d is None or not d.is_scalar:
                self.plain = False
            else:
                defaults[col.key] = d.arg
        names = list(compiled.positiontup or ())
        for name in names:  # a value the statement carries (a LIMIT) unless the row gives one
            bind = compiled.binds.get(name)
            if bind is not None and not bind.required and name not in defaults:
                defaults[name] = bind.effective_value
        self.take = tuple((n, procs.get(n), n in defaults, defaults.get(n)) for n in names)

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        out = []
        for row in rows:
            values = []
            for name, proc, has_default, default in self.take:
                v = row[name] if not has_default or name in row else default
                values.append(proc(v) if proc is not None and v is not None else v)
            out.append(tuple(values))
        return out


@functools.cache
def _compiled(stmt: Any, keys: tuple[str, ...] | None, dialect: Dialect) -> _Compiled:
    return _Compiled(stmt, keys, dialect)


@functools.cache
def _insert_statement(table: Any) -> Any:
    return table.insert()


def _runs(rows: Sequence[Mapping[str, Any]]) -> Iterable[tuple[tuple[str, ...], list[Any]]]:
    """Consecutive rows of the same keys (an executemany needs one shape), in order."""
    keys: tuple[str, ...] | None = None
    run: list[Any] = []
    for row in rows:
        k = tuple(row)
        if k != keys and run:
            yield keys, run  # type: ignore[misc]
            run = []
        keys = k
        run.append(row)
    if run:
        yield keys, run  # type: ignore[misc]


async def insert_rows(conn: AsyncConnection, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT the rows (dicts of column keys → values, as for `conn.execute(insert, rows)`)."""
    if not rows:
        return
    stmt = _insert_statement(table)
    raw = driver(conn)
    if raw is None:
        await conn.execute(stmt, list(rows))
        return
    for keys, run in _runs(rows):
        c = _compiled(stmt, keys, conn.dialect)
        if not c.plain:
            await conn.execute(stmt, run)
        else:
            await raw._execute(raw._connection.executemany, c.sql, c.params(run))


async def update_rows(conn: AsyncConnection, stmt: Any, rows: Sequence[Mapping[str, Any]]) -> int:
    """An UPDATE or DELETE whose values are all bound parameters, once per row (an executemany);
    the rows it changed on SQLite, -1 where the driver does not count an executemany's."""
    if not rows:
        return 0
    raw = driver(conn)
    if raw is None:
        await conn.execute(stmt, list(rows))
        return -1
    c = _compiled(stmt, None, conn.dialect)
    cursor = await raw._execute(raw._connection.executemany, c.sql, c.params(rows))
    return int(cursor.rowcount)
