"""The case projection rows (`ledger_cases`) a ledger transaction reads and writes, as plain data.

A transaction (a partition batch, or one entry alone) reads the rows of its cases once — every
case of a batch with one query — keeps each case's projection and chain head in Python while its
entries are chained, and writes the rows it changed with one upsert executemany as it commits:
no ORM object, no unit-of-work flush, no UPDATE per entry. Queries of the same transaction see
`ledger_cases` as it was when the transaction began: the ledger and its hooks ask this store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import bindparam, event, select
from sqlalchemy.dialects import postgresql, sqlite

from services.followup.domain import as_utc
from services.followup.ledger import CaseProjection
from services.followup.repository import LedgerCase
from shared.db import Tx

KEY = "followup.case_rows"  # session.info: the transaction's CaseRows
_T = LedgerCase.__table__  # type: ignore[attr-defined]
_FIELDS = tuple(f.name for f in fields(CaseProjection))
_TIMES = tuple(
    f.name for f in fields(CaseProjection) if "datetime" in str(f.type)
)  # the projection's instants: tz-aware in Python, naive as SQLite hands them back
_READ = select(*(_T.c[n] for n in ("version", "entries", "last_hash", *_FIELDS))).where(
    _T.c.case_id.in_(bindparam("ids", expanding=True))
)  # built once: the keys are the execution's parameters
_CHUNK = 500


@dataclass(frozen=True)
class Head:
    """A case as the ledger knows it: its projection and the head of its chain."""

    projection: CaseProjection
    entries: int  # the newest entry's seq
    last_hash: str
    version: int  # the newest entry's id (the ledger's global sequence)


def _upsert(dialect: str) -> Any:
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(_T)
    return stmt.on_conflict_do_update(
        index_elements=[_T.c.case_id],
        set_={c.name: stmt.excluded[c.name] for c in _T.c if c.name != "case_id"},
    )


_UPSERT = {d: _upsert(d) for d in ("sqlite", "postgresql")}


def _row(h: Head) -> dict[str, Any]:
    p = h.projection
    out = {name: getattr(p, name) for name in _FIELDS}
    out.update(version=h.version, entries=h.entries, last_hash=h.last_hash)
    return out


def _head(row: Any) -> Head:
    version, entries, last_hash, *values = row
    p = dict(zip(_FIELDS, values, strict=True))
    for name in _TIMES:
        if p[name] is not None:
            p[name] = as_utc(p[name])
    p["co_channels"] = list(p["co_channels"] or [])
    p["parties"] = list(p["parties"] or [])
    return Head(CaseProjection(**p), int(entries), str(last_hash), int(version))


class CaseRows:
    """The `ledger_cases` rows of one transaction (see the module's docstring)."""

    def __init__(self, case_ids: Iterable[str]) -> None:
        self.batch_cases = set(case_ids)  # read together the first time one is asked for
        self.heads: dict[str, Head | None] = {}
        self.dirty: dict[str, Head] = {}
        self.stored: set[str] = set()  # the cases read that the ledger had before

    def new_to_ledger(self, case_id: str) -> bool:
        """Whether the case was read and the ledger had no row of it (False: not read yet)."""
        return case_id in self.heads and case_id not in self.stored

    async def get(self, tx: Tx, case_id: str) -> Head | None:
        """The case as this transaction knows it (None: new to the ledger)."""
        if case_id not in self.heads:
            wanted = (
                [c for c in self.batch_cases if c not in self.heads]
                if case_id in self.batch_cases
                else [case_id]
            )
            await self._read(tx, sorted(wanted))
        return self.heads[case_id]

    def put(self, case_id: str, head: Head) -> None:
        """The case after an entry: written when the transaction commits."""
        self.heads[case_id] = self.dirty[case_id] = head

    async def _read(self, tx: Tx, case_ids: Sequence[str]) -> None:
        conn = await tx.session.connection()  # Core on the connection: no autoflush
        for i in range(0, len(case_ids), _CHUNK):
            chunk = case_ids[i : i + _CHUNK]
            self.heads.update(dict.fromkeys(chunk))
            for row in await conn.execute(_READ, {"ids": list(chunk)}):
                h = _head(row)
                self.heads[h.projection.case_id] = h
                self.stored.add(h.projection.case_id)

    def write(self, sync_session: Any) -> None:
        """Upsert the changed rows (case id order: one lock order for every writer)."""
        if self.dirty:
            conn = sync_session.connection()
            rows = [_row(self.dirty[c]) for c in sorted(self.dirty)]
            conn.execute(_UPSERT[conn.dialect.name], rows)
            self.dirty = {}


def case_rows(tx: Tx) -> CaseRows:
    """The transaction's CaseRows, written as its session commits.

    SQLAlchemy runs the session's `before_commit` inside the async session's greenlet, so the
    synchronous connection there does its I/O on the async driver; a transaction that fails
    never commits, nor writes them (its session, and this store with it, is dropped).
    """
    info = tx.session.sync_session.info
    rows: CaseRows | None = info.get(KEY)
    if rows is None:
        rows = info[KEY] = CaseRows(tx.batch.case_ids if tx.batch is not None else ())

        def write(sync_session: Any) -> None:
            store: CaseRows | None = sync_session.info.pop(KEY, None)
            if store is not None:
                store.write(sync_session)

        event.listen(tx.session.sync_session, "before_commit", write, once=True)
    return rows
