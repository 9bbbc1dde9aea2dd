"""The plumbing's statements on SQLite's own connection store and read what SQLAlchemy does."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import fastsql
from shared.db import make_engine

META = MetaData()


def _table(name: str) -> Table:
    return Table(
        name,
        META,
        Column("id", Integer, primary_key=True),
        Column("k", String(20), nullable=False),
        Column("at", DateTime(timezone=True)),
        Column("doc", JSON),
        Column("blob", LargeBinary),
        Column("note", String(20), nullable=False, default="none"),
        Column("made", String(20), default=lambda: "called"),
    )


FAST, SLOW = _table("fast"), _table("slow")
AT = datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=UTC)
ROWS: list[dict[str, Any]] = [
    {"k": "a", "at": AT, "doc": {"heads": ["x", "y"], "n": 1}, "blob": b"\x00\x01"},
    {"k": "b", "at": AT + timedelta(hours=1), "doc": [1, "二"], "blob": None},
    {"k": "c", "at": None, "doc": None, "blob": b"", "note": "given"},  # another shape
    {"k": "d", "at": AT, "doc": {}, "blob": b"z"},
]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(META.create_all)
    yield engine
    await engine.dispose()


def _stored(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            f"SELECT id, k, at, doc, blob, note, made FROM {table} ORDER BY id"
        ).fetchall()


async def test_rows_are_stored_byte_for_byte_as_sqlalchemy_stores_them(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    async with engine.begin() as conn:
        assert fastsql.driver(conn) is not None
        await fastsql.insert_rows(conn, FAST, ROWS)
        await conn.execute(SLOW.insert(), ROWS[:2])
        await conn.execute(SLOW.insert(), ROWS[2:3])
        await conn.execute(SLOW.insert(), ROWS[3:])
    fast, slow = _stored(tmp_path / "f.db", "fast"), _stored(tmp_path / "f.db", "slow")
    assert fast == slow
    assert [r[1] for r in fast] == ["a", "b", "c", "d"]  # in the order given
    assert [r[5] for r in fast] == ["none", "none", "given", "none"]  # constant default kept
    assert [r[6] for r in fast] == ["called"] * 4  # a callable default: SQLAlchemy's own path


async def test_reads_come_back_as_sqlalchemy_reads_them(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await fastsql.insert_rows(conn, FAST, ROWS)
    async with engine.connect() as conn:
        got = await fastsql.select_in(conn, FAST, ("k", "doc", "blob"), "k", ["b", "a", "zz"])
        assert sorted(got) == [
            ("a", {"heads": ["x", "y"], "n": 1}, b"\x00\x01"),
            ("b", [1, "二"], None),
        ]
        assert await fastsql.select_in(conn, FAST, ("k",), "k", ["a", "c"], note="given") == [
            ("c",)
        ]
        assert await fastsql.select_in(conn, FAST, ("k",), "k", []) == []
        many = await fastsql.select_in(
            conn, FAST, ("k",), "k", [f"n{i}" for i in range(1200)] + ["d"]
        )
        assert many == [("d",)]  # across chunks of 500 ids
        first = (
            select(FAST.c.k, FAST.c.doc).where(FAST.c.at.is_not(None)).order_by(FAST.c.id).limit(2)
        )
        assert await fastsql.fetch(conn, first) == [
            ("a", {"heads": ["x", "y"], "n": 1}),
            ("b", [1, "二"]),
        ]
        by_note = select(FAST.c.k).where(FAST.c.note == bindparam("n")).order_by(FAST.c.id)
        assert await fastsql.fetch(conn, by_note, {"n": "none"}) == [("a",), ("b",), ("d",)]


async def test_updates_bind_each_row(engine: AsyncEngine, tmp_path: Path) -> None:
    stmt = (
        update(FAST)
        .where(FAST.c.k == bindparam("b_k"))
        .values(doc=bindparam("b_doc", type_=JSON()), at=bindparam("b_at", type_=FAST.c.at.type))
    )
    slow = (
        update(SLOW)
        .where(SLOW.c.k == bindparam("b_k"))
        .values(doc=bindparam("b_doc", type_=JSON()), at=bindparam("b_at", type_=SLOW.c.at.type))
    )
    changes = [
        {"b_k": "a", "b_doc": ["moved"], "b_at": AT + timedelta(days=1)},
        {"b_k": "d", "b_doc": {"seq": 2}, "b_at": None},
    ]
    async with engine.begin() as conn:
        await fastsql.insert_rows(conn, FAST, ROWS)
        await conn.execute(SLOW.insert(), ROWS[:2])
        await conn.execute(SLOW.insert(), ROWS[2:3])
        await conn.execute(SLOW.insert(), ROWS[3:])
        await fastsql.update_rows(conn, stmt, changes)
        await conn.execute(slow, changes)
    assert _stored(tmp_path / "f.db", "fast") == _stored(tmp_path / "f.db", "slow")
    async with engine.connect() as conn:
        got = await fastsql.select_in(conn, FAST, ("k", "doc", "at"), "k", ["a", "d"])
    assert sorted(got) == [
        ("a", ["moved"], AT.replace(tzinfo=None) + timedelta(days=1)),
        ("d", {"seq": 2}, None),
    ]


async def test_a_rolled_back_transaction_keeps_nothing_written_on_the_driver(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await fastsql.insert_rows(conn, FAST, ROWS)
            raise RuntimeError("the batch failed")
    assert _stored(tmp_path / "f.db", "fast") == []
