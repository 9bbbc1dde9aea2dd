"""Database plumbing: engines, the outbox/inbox/trail tables, the unit of work, the relay."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    bindparam,
    delete,
    event,
    func,
    inspect,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, class_mapper
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared import fastsql
from shared.bus import Bus, OutgoingMessage
from shared.contracts import REGISTRY, TrailAppended, produce_trail_details
from shared.events import (
    Envelope,
    event_id_floor,
    made_before,
    new_event_id,
    tells_time,
    utcnow,
)
from shared.sqlite_inline import inline_creator
from shared.tracing import headers_for

log = logging.getLogger("fengqiao.db")

_RELAY_LOCK_KEY = 0x0F3A_0B0C  # the outbox relay's advisory lock (one per service database)
_RELAY_LOCK = text("SELECT pg_try_advisory_xact_lock(:k)")


def make_engine(url: str) -> AsyncEngine:
    """Create an async engine; SQLite gets WAL, a busy timeout and foreign keys.

    SQLite runs on the event loop's thread (shared.sqlite_inline) unless
    FENGQIAO_SQLITE_THREAD=1 asks for aiosqlite's worker thread.
    """
    if url.startswith("sqlite"):
        memory = url.endswith("://") or ":memory:" in url
        inline = os.environ.get("FENGQIAO_SQLITE_THREAD", "") not in ("1", "true")
        connect_args: dict[str, Any] = {"timeout": 30}
        if inline:
            connect_args["async_creator_fn"] = inline_creator
        engine = create_async_engine(
            url,
            connect_args=connect_args,
            poolclass=StaticPool if memory else None,
        )
        busy_ms = 0 if inline else 30_000

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def tz(column_name: str | None = None, **kw: Any) -> Any:
    """A timezone-aware timestamp column."""
    return Field(sa_column=Column(column_name, DateTime(timezone=True), **kw))


def json_column(**kw: Any) -> Any:
    """A JSON column."""
    return Field(default_factory=dict, sa_column=Column(JSON, **kw))


@dataclass(frozen=True)
class DeliveryTables:
    """The outbox, inbox and trail tables of one service (each service has its own)."""

    outbox: Any
    inbox: Any
    trail: Any
    staff: Any  # staff_status: who is still active, at which token version (shared.staff_status)
    audit: Any  # read_audit: who was shown which case's personal data in clear (shared.audit)
    trail_heads: Any = None
    parked: Any = None


def delivery_tables(base: type[SQLModel]) -> DeliveryTables:
    """Declare outbox, inbox and trail tables on a service's own SQLModel base."""

    class OutboxRow(base, table=True):  # type: ignore[misc, valid-type, call-arg]
        # a row is deleted once the broker has acknowledged it: what is here is unsent
        __tablename__ = "outbox"
        id: int | None = Field(default=None, primary_key=True)
        event_id: str = Field(unique=True, max_length=64)
        topic: str = Field(max_length=200)
        key: str | None = Field(default=None, max_length=200)
        value: bytes
        created_at: datetime = tz(nullable=False)

    class InboxRow(base, table=True):  # type: ignore[misc, valid-type, call-arg]
        __tablename__ = "inbox"
        consumer: str = Field(primary_key=True, max_length=100)
        event_id: str = Field(primary_key=True, max_length=64)
        processed_at: datetime = tz(nullable=False)

    class TrailRow(base, table=True):  # type: ignore[misc, valid-type, call-arg]
        __tablename__ = "trail"
        id: int | None = Field(default=None, primary_key=True)
        case_id: str = Field(index=True, max_length=64)
        at: datetime = tz(nullable=False)
        actor: str = Field(max_length=100)
        actor_role: str = Field(max_length=40)
        action: str = Field(max_length=40)
        from_status: str | None = Field(default=None, max_length=40)
        to_status: str = Field(max_length=40)
        reason: str = ""
        details: dict[str, Any] = json_column()
        event_id: str = Field(max_length=64)

    class TrailHeadRow(base, table=True):  # type: ignore[misc, valid-type, call-arg]
        """The newest trail entries of a case this service knows of (causal order)."""

        __tablename__ = "trail_heads"
        case_id: str = Field(primary_key=True, max_length=64)
        heads: list[str] = json_column()
        seq: int = 0

    class ParkedRow(base, table=True):  # type: ignore[misc, valid-type, call-arg]
        """A trail entry that arrived before one it follows: applied once that one is."""

        __tablename__ = "trail_parked"
        __table_args__ = (Index("ix_trail_parked_case", "consumer", "case_id", "id"),)
        id: int | None = Field(default=None, primary_key=True)
        consumer: str = Field(max_length=100)
        event_id: str = Field(max_length=64)
        case_id: str = Field(max_length=64)
        follows: list[str] = json_column()
        value: bytes
        parked_at: datetime = tz(nullable=False)

    class StaffStatusRow(base, table=True):  # type: ignore[misc, valid-type, call-arg]
        __tablename__ = "staff_status"
        staff_id: str = Field(primary_key=True, max_length=64)
        active: bool = True
        token_version: int = 0
        changed_at: datetime | None = tz(nullable=True)

    class ReadAuditRow(base, table=True):  # type: ignore[misc, valid-type, call-arg]
        __tablename__ = "read_audit"
        __table_args__ = (Index("ix_read_audit_case", "case_id", "id"),)
        id: int | None = Field(default=None, primary_key=True)
        at: datetime = tz(nullable=False)
        subject: str = Field(max_length=64)
        role: str = Field(max_length=20)
        case_id: str = Field(max_length=64)
        fields: list[str] = json_column()
        route: str = Field(max_length=200)

    return DeliveryTables(
        OutboxRow, InboxRow, TrailRow, StaffStatusRow, ReadAuditRow, TrailHeadRow, ParkedRow
    )


@dataclass
class _Out:
    """An outbox row on its way: an event (encoded once sealed) or raw bytes (source feedback)."""

    topic: str
    key: str | None
    env: Envelope | None = None
    value: bytes = b""


AfterCommit = Callable[[], Awaitable[None]]


def _chunks(items: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@functools.cache
def _parked_query(table: Any) -> Any:
    return select(table.c.event_id, table.c.case_id).where(table.c.consumer == bindparam("c"))


@functools.cache
def _heads_update(table: Any) -> Any:
    c = table.c
    return (
        update(table)
        .where(c.case_id == bindparam("b_case_id"), c.seq == bindparam("b_read_seq"))
        .values(heads=bindparam("b_heads", type_=c.heads.type), seq=bindparam("b_seq"))
    )


class HeadsMoved(RuntimeError):
    """Another transaction moved a case's trail heads after this one read them: rolled back,
    to be done again on the new heads (a serialization failure: a batch is tried again whole,
    an HTTP request answers 409)."""

    sqlstate = "40001"


class HeadStore:
    """The trail heads (newest entries and sequence per case) a transaction or a batch reads
    and moves: read with one query per set of cases, written with one executemany per kind
    (insert for cases that had none, update for the others) before the commit. No ORM object
    per event: a batch of hundreds of events moves hundreds of heads."""

    def __init__(self, table: Any) -> None:
        self.table = getattr(table, "__table__", table)
        self.known: dict[str, tuple[list[str], int]] = {}  # case → heads, seq (read or moved)
        self.read_seq: dict[str, int] = {}  # case → seq of its stored row as read
        self.stored: set[str] = set()  # cases with a row in the table
        self.changed: set[str] = set()

    async def load(self, session: AsyncSession, case_ids: Iterable[str]) -> None:
        """Read the heads of the cases not read yet. Another transaction moving one of them
        before this one commits would have its entry dropped from the heads this one writes:
        PostgreSQL locks the rows read (FOR UPDATE: a concurrent writer waits, then reads what
        this one wrote); on SQLite, whose transaction begins only at its first write (after
        this read), write() moves only heads still as read, else raises HeadsMoved."""
        missing = sorted(c for c in case_ids if c not in self.known)
        if not missing:
            return
        conn = await session.connection()
        rows = await fastsql.select_in(
            conn, self.table, ("case_id", "heads", "seq"), "case_id", missing, lock=True
        )
        for case_id, heads, seq in rows:
            self.known[case_id] = (list(heads or []), int(seq or 0))
            self.read_seq[case_id] = int(seq or 0)
            self.stored.add(case_id)
        for case_id in missing:
            self.known.setdefault(case_id, ([], 0))

    def fresh(self, case_ids: Iterable[str]) -> None:
        """Cases known to have no heads yet (ids just made for new cases): never read."""
        for case_id in case_ids:
            self.known.setdefault(case_id, ([], 0))

    def move(self, case_id: str, heads: list[str], seq: int) -> None:
        """Set a case's heads (written by write())."""
        self.known[case_id] = (heads, seq)
        self.changed.add(case_id)

    async def write(self, session: AsyncSession) -> None:
        """Insert and update the moved heads; a concurrent writer's new row fails the insert
        (IntegrityError: the work is retried and then follows it)."""
        if not self.changed:
            return
        inserts = [
            {"case_id": k, "heads": self.known[k][0], "seq": self.known[k][1]}
            for k in sorted(self.changed - self.stored)
        ]
        updates = [
            {
                "b_case_id": k,
                "b_read_seq": self.read_seq[k],
                "b_heads": self.known[k][0],
                "b_seq": self.known[k][1],
            }
            for k in sorted(self.changed & self.stored)
        ]
        conn = await session.connection()
        await fastsql.insert_rows(conn, self.table, inserts)
        moved = await fastsql.update_rows(conn, _heads_update(self.table), updates)
        if 0 <= moved < len(updates):
            raise HeadsMoved(f"{len(updates) - moved} cases' trail heads moved meanwhile")
        for k in self.changed:
            self.read_seq[k] = self.known[k][1]
        self.stored |= self.changed
        self.changed = set()


class Tx:
    """One business transaction: state changes, trail entries and outgoing events together."""

    def __init__(
        self,
        session: AsyncSession,
        delivery: Delivery,
        cause: Envelope | None,
        batch: Batch | None = None,
    ) -> None:
        self.session, self.delivery, self.cause, self.batch = session, delivery, cause, batch
        self.emitted: list[Envelope] = []
        # outbox and trail rows, written together (Core executemany) once the work is sealed
        self._outbox: list[_Out] = []
        self._trail: list[dict[str, Any]] = []
        self._rows: dict[Any, list[dict[str, Any]]] = {}  # add_rows: table → rows, in order
        self._heads: HeadStore | None = None  # outside a batch: the heads seal() moved
        # what handlers keep between the entries this transaction applies (a causal gate's
        # released ones follow the one that freed them): the batch's memo inside a batch
        self.memo: dict[str, Any] = batch.memo if batch is not None else {}

    def emit(self, topic: str, event_type: str, payload: BaseModel, case_id: str) -> Envelope:
        """Queue an event in the outbox (published by the relay after commit)."""
        env = REGISTRY.event(
            payload,
            event_type=event_type,
            producer=self.delivery.producer,
            case_id=case_id,
            cause=self.cause,
        )
        self._outbox.append(_Out(topic, case_id, env))
        self.emitted.append(env)
        return env

    async def get(self, model: type[Any], case_id: str) -> Any:
        """The row of a table keyed by case id (None when there is none).

        Inside a batch the rows of every case in the batch are read with one query the first
        time a table is asked for, so each event's lookup costs no round trip.
        """
        if self.batch is None or case_id not in self.batch.case_ids:
            return await self.session.get(model, case_id)
        return await self.batch.get(model, case_id)

    def add_rows(self, table: Any, rows: Iterable[dict[str, Any]]) -> None:
        """Queue plain inserts into a table (an ORM class or a Core Table): written with one
        executemany per table when the batch commits (or this transaction ends outside a
        batch), after the ORM flush. Queries of the same transaction do not see them."""
        self._rows.setdefault(table, []).extend(rows)

    def publish_raw(self, topic: str, key: str | None, value: bytes) -> None:
        """Queue a record that is not an event (a source's feedback) in the outbox."""
        self._outbox.append(_Out(topic, key, value=value))

    async def seal(self) -> None:
        """Link this transaction's trail entries and events into the case's causal order.

        Each trail entry follows the newest entries this service knows of for its case (its own
        last one, and the head its cause carried); each event carries the head it leaves, so the
        service acting on it writes entries that follow it. Called once, just before commit.
        """
        heads_table = self.delivery.tables.trail_heads
        if heads_table is None or not self.emitted:
            return
        cases: dict[str, list[Envelope]] = {}
        for env in self.emitted:
            cases.setdefault(env.case_id, []).append(env)
        if self.batch is not None:
            store = self.batch.heads
            # the batch's own cases in one query the first time; later only a case it had not
            missing = cases.keys() - store.known.keys()
            if missing:
                await store.load(self.session, missing | (self.batch.case_ids - store.known.keys()))
        else:
            store = self._heads = HeadStore(heads_table)
            await store.load(self.session, cases)
        for case_id, outgoing in cases.items():
            stored_heads, stored_seq = store.known[case_id]
            heads, seq = set(stored_heads), stored_seq
            if self.cause is not None and self.cause.case_id == case_id:
                # what we did and what caused this: the new entry follows both
                heads |= set(self.cause.trail_head)
                seq = max(seq, self.cause.trail_seq)
            before = (sorted(heads), seq)
            for env in outgoing:
                if env.event_type == "trail.appended":
                    env.payload["follows"], env.payload["seq"] = sorted(heads), seq + 1
                    heads, seq = {env.event_id}, seq + 1
            for env in outgoing:
                if env.event_type != "trail.appended":
                    env.trail_head, env.trail_seq = sorted(heads), seq
            if (sorted(heads), seq) != before:
                store.move(case_id, sorted(heads), seq)

    async def write_rows(self) -> None:
        """Write the trail and outbox rows (after seal): into the batch's, else right away."""
        now = utcnow()
        outbox = [
            {
                "event_id": o.env.event_id if o.env is not None else new_event_id(),
                "topic": o.topic,
                "key": o.key,
                "value": o.env.to_bytes() if o.env is not None else o.value,
                "created_at": now,
            }
            for o in self._outbox
        ]
        if self.batch is not None:
            self.batch.trail_rows.extend(self._trail)
            self.batch.outbox_rows.extend(outbox)
            for table, rows in self._rows.items():
                self.batch.rows.setdefault(table, []).extend(rows)
        else:
            if self._heads is not None:
                await self._heads.write(self.session)
            await write_rows(
                self.session, self.delivery.tables, self._trail, outbox, [], self._rows
            )
        self._trail, self._outbox, self._rows = [], [], {}

    @property
    def queued(self) -> bool:
        """Whether this transaction put anything in the outbox."""
        return bool(self.emitted or self._outbox)

    def transition(
        self,
        case_id: str,
        *,
        action: str,
        to_status: str,
        from_status: str | None,
        actor: str,
        actor_role: str = "system",
        reason: str = "",
        details: dict[str, Any] | None = None,
        at: datetime | None = None,
        party_hashes: list[str] | None = None,
        sealed_location: str | None = None,
    ) -> Envelope:
        """Append a trail entry locally and publish it to the shared trail topic."""
        entry = TrailAppended(
            party_hashes=party_hashes or [],
            sealed_location=sealed_location,
            case_id=case_id,
            at=at or utcnow(),
            actor=actor,
            actor_role=actor_role,
            action=action,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
            # the action's typed model: a field the consumers do not know is refused here
            details=produce_trail_details(action, details or {}),
        )
        env = self.emit(self.delivery.trail_topic, "trail.appended", entry, case_id)
        self._trail.append(
            {
                "case_id": case_id,
                "at": entry.at,
                "actor": actor,
                "actor_role": actor_role,
                "action": action,
                "from_status": from_status,
                "to_status": to_status,
                "reason": reason,
                "details": entry.details,
                "event_id": env.event_id,
            }
        )
        return env


async def write_rows(
    session: AsyncSession,
    tables: DeliveryTables,
    trail: list[dict[str, Any]],
    outbox: list[dict[str, Any]],
    inbox: list[dict[str, Any]],
    extra: dict[Any, list[dict[str, Any]]] | None = None,
) -> None:
    """Insert the rows queued with add_rows (per table, in the order tables were first given),
    then trail, outbox and inbox rows, with one executemany each (outbox in emit order)."""
    extra = {t: rows for t, rows in (extra or {}).items() if rows}
    if not (trail or outbox or inbox or extra):
        return
    await session.flush()
    conn = await session.connection()
    for table, rows in extra.items():
        await fastsql.insert_rows(conn, getattr(table, "__table__", table), rows)
    for table, rows in ((tables.trail, trail), (tables.outbox, outbox), (tables.inbox, inbox)):
        await fastsql.insert_rows(conn, table.__table__, rows)


def _new_key(table: Any) -> str:
    return f"new.{getattr(table, '__tablename__', table)}"  # batch memo: case id → new record


def insert_new(tx: Tx, table: Any, new: Any) -> None:
    """Queue the row of a record first seen in this transaction, built as a plain object
    (`new.values()`, its row kept in `new.row`): inserted by Core with the batch's commit, not by
    an ORM object per event; later events of the batch find it (find_new_or_stored)."""
    new.row = new.values()
    tx.add_rows(table, [new.row])
    if tx.batch is not None:
        tx.batch.memo.setdefault(_new_key(table), {})[new.case_id] = new


def save_new_or_stored(tx: Tx, record: Any) -> None:
    """Keep a record's changes: a stored row through the session, a new one in its queued row."""
    if isinstance(record, SQLModel):
        tx.session.add(record)
    elif record.row is not None:
        record.row.update(record.values())


async def find_new_or_stored(tx: Tx, table: Any, case_id: str, *, expect_new: bool = False) -> Any:
    """The record of a case: new in this batch (not written yet), else the stored row.

    `expect_new` (an event that creates the case) skips the stored rows in a consumer batch: a
    row stored before makes the batch's insert fail, and the one-by-one replay, which does look,
    then ignores that event — a batch of new cases reads no rows at all.
    """
    if tx.batch is not None:
        new = tx.batch.memo.get(_new_key(table), {}).get(case_id)
        if new is not None or expect_new:
            return new
    return await tx.get(table, case_id)


_BATCH_INFO = "fengqiao.batch"  # a batch session's info: its Batch


def _keep(session: Session, obj: Any) -> None:
    batch = session.info.get(_BATCH_INFO)
    if batch is not None:
        batch._refs.append(obj)


def _pending(session: Session, obj: Any) -> None:
    batch = session.info.get(_BATCH_INFO)
    if batch is not None:
        batch._index_pending(session, obj)


@functools.cache
def _listen_for_batches() -> None:
    """A batch session's hooks, listened for once on every session (a listener per session
    cost more than a small batch's statements): the identity map holds clean rows weakly, so
    the batch keeps every row it loads or writes alive until it ends (a later event of the
    batch finds it without a query), and indexes what it adds by key."""
    for name in ("loaded_as_persistent", "pending_to_persistent"):
        event.listen(Session, name, _keep)
    event.listen(Session, "transient_to_pending", _pending)


_BATCH: contextvars.ContextVar[Batch | None] = contextvars.ContextVar(
    "fengqiao_batch", default=None
)


class Batch:
    """One partition batch handled in one transaction (Delivery.batch).

    Each event's work runs in the batch's session, in offset order; the inbox is read once per
    consumer for every event of the batch (and every entry the batch's trail entries follow),
    and the trail, outbox and inbox rows are written with one executemany each before the one
    commit. Opened lazily: a batch whose events all turn out to be for others opens nothing.
    """

    def __init__(self, delivery: Delivery, envelopes: Sequence[Envelope]) -> None:
        self.delivery = delivery
        self.envelopes = envelopes  # the batch's events in offset order (a consumer reads ahead)
        ids = {e.event_id for e in envelopes}
        for e in envelopes:
            follows = e.payload.get("follows") if e.event_type == "trail.appended" else None
            if isinstance(follows, list):
                ids.update(str(f) for f in follows)
        self.ids = ids
        self.case_ids = {e.case_id for e in envelopes}
        self._preloaded: set[type[Any]] = set()  # tables whose rows of case_ids were read
        self._refs: list[Any] = []  # rows the batch's session loaded or wrote (strong refs)
        self._pending: dict[tuple[type[Any], tuple[Any, ...]], Any] = {}  # added, by key
        self._unkeyed = False  # an object was added before its primary key was set
        self.session: AsyncSession | None = None
        self._loaded: set[str] = set()  # consumers whose inbox rows for self.ids were read
        self._seen: set[tuple[str, str]] = set()  # (consumer, event_id) processed
        self._parked: dict[str, dict[str, str]] = {}  # consumer → {event_id: case_id}
        self.inbox_rows: list[dict[str, Any]] = []
        self.outbox_rows: list[dict[str, Any]] = []
        self.trail_rows: list[dict[str, Any]] = []
        self.rows: dict[Any, list[dict[str, Any]]] = {}  # Tx.add_rows of the batch's events
        self.heads = HeadStore(delivery.tables.trail_heads)  # the cases' trail heads
        self.after: list[AfterCommit] = []
        self.before: list[Callable[[AsyncSession], Awaitable[None]]] = []
        self.events = 0  # events handled in the batch's transaction
        # what a consumer read once for the whole batch (its own keys; dropped with the batch)
        self.memo: dict[str, Any] = {}

    async def open(self) -> AsyncSession:
        """The batch's session, in its transaction."""
        if self.session is None:
            self.session = self.delivery.sessions()
            _listen_for_batches()
            self.session.sync_session.info[_BATCH_INFO] = self
            await self.session.begin()
        return self.session

    async def _load(self, consumer: str) -> AsyncSession:
        session = await self.open()
        if consumer not in self._loaded:
            self._loaded.add(consumer)
            conn = await session.connection()
            rows = await fastsql.select_in(
                conn,
                self.delivery.tables.inbox.__table__,
                ("event_id",),
                "event_id",
                self.ids,
                consumer=consumer,
            )
            self._seen.update((consumer, e) for (e,) in rows)
        return session

    async def applied(self, consumer: str, event_ids: Iterable[str]) -> set[str]:
        """Which of these events the consumer has processed (in this batch or before)."""
        session = await self._load(consumer)
        wanted = set(event_ids)
        done = {e for e in wanted if (consumer, e) in self._seen}
        unknown = sorted(e for e in wanted - done if e not in self.ids)
        if unknown:  # not read with the batch (a released entry's causes)
            conn = await session.connection()
            rows = await fastsql.select_in(
                conn,
                self.delivery.tables.inbox.__table__,
                ("event_id",),
                "event_id",
                unknown,
                consumer=consumer,
            )
            done.update(e for (e,) in rows)
        return done

    async def claim(self, consumer: str, event_id: str) -> bool:
        """Record that the consumer processes this event now; False when it did before."""
        if event_id in await self.applied(consumer, [event_id]):
            return False
        self._seen.add((consumer, event_id))
        self.inbox_rows.append(
            {"consumer": consumer, "event_id": event_id, "processed_at": utcnow()}
        )
        return True

    async def get(self, model: type[Any], case_id: str) -> Any:
        """A row keyed by one of the batch's case ids: from the session, loaded once per table."""
        session = await self.open()
        sync = session.sync_session
        mapper = class_mapper(model)
        if model not in self._preloaded:
            self._preloaded.add(model)
            pk = mapper.primary_key[0]
            await session.flush()  # what the batch added is in the identity map, not re-read
            for chunk in _chunks(sorted(self.case_ids)):
                (await session.exec(select(model).where(pk.in_(chunk)))).all()  # into the map
        obj = sync.identity_map.get(mapper.identity_key_from_primary_key((case_id,)))
        if obj is not None:
            return None if obj in sync.deleted else obj
        # added by an earlier event of the batch, not yet flushed: found by its key, not by
        # walking every pending object (a batch of hundreds of events adds hundreds)
        pending = self._pending.get((model, (case_id,)))
        if pending is not None and inspect(pending).pending:
            return pending
        if self._unkeyed:  # some object was added before its key was set: look at each
            for pending in sync.new:
                if type(pending) is model and mapper.primary_key_from_instance(pending) == (
                    case_id,
                ):
                    return pending
        return None

    def _index_pending(self, _session: Any, obj: Any) -> None:
        key = tuple(class_mapper(type(obj)).primary_key_from_instance(obj))
        if any(k is None for k in key):
            self._unkeyed = True
        else:
            self._pending[(type(obj), key)] = obj

    async def parked(self, consumer: str) -> dict[str, str]:
        """The consumer's parked entries (event id → case id), kept up to date in the batch."""
        if consumer not in self._parked:
            conn = await (await self.open()).connection()
            rows = await fastsql.fetch(
                conn, _parked_query(self.delivery.tables.parked.__table__), {"c": consumer}
            )
            self._parked[consumer] = {e: c for e, c in rows}
        return self._parked[consumer]

    def before_commit(self, fn: Callable[[AsyncSession], Awaitable[None]]) -> None:
        """Run fn(session) once the batch's rows are written, just before its commit (a
        consumer's own rows it kept up to date in memory across the batch's events)."""
        self.before.append(fn)

    async def commit(self) -> None:
        """Write the batch's rows and commit."""
        if self.session is None:
            return
        await self.heads.write(self.session)
        await write_rows(
            self.session,
            self.delivery.tables,
            self.trail_rows,
            self.outbox_rows,
            self.inbox_rows,
            self.rows,
        )
        for fn in self.before:
            await fn(self.session)
        await self.session.commit()

    async def close(self) -> None:
        """Close the session (rolling back what was not committed)."""
        if self.session is not None:
            self.session.sync_session.info.pop(_BATCH_INFO, None)
            await self.session.close()


class Delivery:
    """Transactions with outbox and inbox for one service, and the relay's wake-up signal."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tables: DeliveryTables,
        producer: str,
        trail_topic: str,
        inbox_retention: timedelta | None = None,
    ) -> None:
        self.sessions, self.tables = sessions, tables
        self.producer, self.trail_topic = producer, trail_topic
        # how long the inbox remembers a handled event (shared.inbox_retention); None: for ever
        self.inbox_retention = inbox_retention
        self.wakeup = asyncio.Event()
        # the consumers that park trail entries (CausalGate): their gauges read 0 when none wait
        self.gated: set[str] = set()

    def current_batch(self) -> Batch | None:
        """The batch this task is handling for this service, if any."""
        batch = _BATCH.get()
        return batch if batch is not None and batch.delivery is self else None

    @asynccontextmanager
    async def batch(self, envelopes: Sequence[Envelope]) -> AsyncIterator[Batch]:
        """Handle a partition batch in one transaction: transaction() and handle_once() join it.

        Commits when the block ends; on an error nothing of the batch is kept (the bus then
        replays its records one at a time). After-commit work runs only once committed.
        """
        batch = Batch(self, envelopes)
        token = _BATCH.set(batch)
        try:
            yield batch
            await batch.commit()
        finally:
            _BATCH.reset(token)
            await batch.close()
        if batch.outbox_rows:
            self.wakeup.set()
        for fn in batch.after:
            await fn()

    async def after_commit(self, fn: AfterCommit) -> None:
        """Run fn once the work in hand is committed: now, or when the batch commits."""
        batch = self.current_batch()
        if batch is not None:
            batch.after.append(fn)
        else:
            await fn()

    @asynccontextmanager
    async def transaction(self, cause: Envelope | None = None) -> AsyncIterator[Tx]:
        """Open a transaction; commits on success, wakes the relay if events were queued.

        Inside a batch the work joins the batch's transaction (committed with the batch).
        """
        batch = self.current_batch()
        if batch is not None:
            tx = Tx(await batch.open(), self, cause, batch)
            yield tx
            await tx.seal()
            await tx.write_rows()
            batch.events += 1
            return
        async with self.sessions() as session, session.begin():
            tx = Tx(session, self, cause)
            yield tx
            await tx.seal()
            queued = tx.queued
            await tx.write_rows()
        if queued:
            self.wakeup.set()

    async def handle_once(
        self, consumer: str, env: Envelope, fn: Callable[[Tx], Awaitable[None]]
    ) -> bool:
        """Run fn in a transaction unless this consumer already processed env (inbox)."""
        batch = self.current_batch()
        if batch is not None:
            if not await batch.claim(consumer, env.event_id):
                return False
            async with self.transaction(cause=env) as tx:
                await fn(tx)
            return True
        try:
            async with self.transaction(cause=env) as tx:
                seen = await tx.session.get(self.tables.inbox, (consumer, env.event_id))
                if seen is not None:
                    return False
                tx.session.add(
                    self.tables.inbox(
                        consumer=consumer, event_id=env.event_id, processed_at=utcnow()
                    )
                )
                await tx.session.flush()
                await fn(tx)
            return True
        except IntegrityError:
            # A concurrent delivery of the same event won the race: that one counts.
            async with self.sessions() as session:
                if await session.get(self.tables.inbox, (consumer, env.event_id)) is not None:
                    return False
            raise


class ParkingFull(RuntimeError):
    """Too many trail entries are waiting for their causes; refuse (retry, then dead-letter)."""


TrailApply = Callable[[Tx, Envelope, TrailAppended], Awaitable[None]]


@dataclass
class CausalStats:
    """Counters of the causal gate (plain attributes another module's /metrics reads)."""

    parked_total: int = 0
    released_total: int = 0
    refused_total: int = 0


class CausalGate:
    """Applies one consumer's trail entries in causal order, parking those that come early.

    An entry is applied once every entry it follows has been applied by this consumer; one
    that arrives before its cause is kept in `trail_parked` (persisted, bounded) and applied in
    the same transaction as the entry that completes its causes.

    Applied means an inbox row, or — where the inbox is pruned (Delivery.inbox_retention) — a
    cause whose id (UUID v7) was made before the retention and is not parked: its row may be
    gone, and it was delivered long ago (the retention exceeds what the broker keeps).
    """

    def __init__(
        self,
        delivery: Delivery,
        consumer: str,
        max_parked: int = 10_000,
        epoch: Callable[[AsyncSession], Awaitable[datetime | None]] | None = None,
    ) -> None:
        self.delivery, self.consumer, self.max_parked = delivery, consumer, max_parked
        self.stats = CausalStats()
        delivery.gated.add(consumer)
        # a consumer gated after it had run: what it did not record before the gate began
        # (read once from its database) counts as applied, or its live cases would wait for
        # ever on entries it skipped then
        self._epoch_of, self._epoch_read = epoch, epoch is None
        self._epoch: str | None = None

    async def handle(self, env: Envelope, entry: TrailAppended, apply: TrailApply) -> bool:
        """Apply (or park) an entry once; False when this consumer has seen it before."""

        async def work(tx: Tx) -> None:
            if not await self._ready(tx, entry):
                await self._park(tx, env, entry)
                return
            await apply(tx, env, entry)
            await self._release(tx, entry.case_id, apply)

        return await self.delivery.handle_once(self.consumer, env, work)

    async def parked(self, case_id: str | None = None) -> int:
        """How many entries wait for their causes now (of one case, or all)."""
        parked = self.delivery.tables.parked
        async with self.delivery.sessions() as session:
            stmt = select(func.count()).select_from(parked).where(parked.consumer == self.consumer)
            if case_id is not None:
                stmt = stmt.where(parked.case_id == case_id)
            return int((await session.exec(stmt)).one())

    def _looked_up(self, follows: Sequence[str]) -> set[str]:
        """The causes whose inbox rows prove them applied: all of them, but for those made
        before the inbox retention (their rows may be pruned: taken as applied) or before the
        gate's epoch (any id that tells no time is older than the epoch too)."""
        retention = self.delivery.inbox_retention
        out = set(follows)
        if retention is not None:
            floor = event_id_floor(utcnow() - retention)
            out = {f for f in out if not made_before(f, floor)}
        if self._epoch is not None:
            epoch = self._epoch
            out = {f for f in out if tells_time(f) and not made_before(f, epoch)}
        return out

    async def _ready(self, tx: Tx, entry: TrailAppended) -> bool:
        if not entry.follows:
            return True
        if not self._epoch_read and self._epoch_of is not None:
            since = await self._epoch_of(tx.session)
            self._epoch = event_id_floor(since) if since is not None else None
            self._epoch_read = True
        causes, looked_up = set(entry.follows), self._looked_up(entry.follows)
        if tx.batch is not None:
            if len(await tx.batch.applied(self.consumer, looked_up)) < len(looked_up):
                return False
            parked_now = await tx.batch.parked(self.consumer)
            return not any(f in parked_now for f in causes)
        inbox, parked = self.delivery.tables.inbox, self.delivery.tables.parked
        if looked_up:
            seen = await tx.session.exec(
                select(inbox.event_id).where(
                    inbox.consumer == self.consumer, inbox.event_id.in_(looked_up)
                )
            )
            if len(set(seen.all())) < len(looked_up):
                return False
        waiting = await tx.session.exec(
            select(parked.event_id).where(
                parked.consumer == self.consumer, parked.event_id.in_(causes)
            )
        )
        return not waiting.all()

    async def _park(self, tx: Tx, env: Envelope, entry: TrailAppended) -> None:
        parked = self.delivery.tables.parked
        if tx.batch is not None:
            count = len(await tx.batch.parked(self.consumer))
        else:
            count = (
                await tx.session.exec(
                    select(func.count()).select_from(parked).where(parked.consumer == self.consumer)
                )
            ).one()
        if count >= self.max_parked:
            self.stats.refused_total += 1
            raise ParkingFull(f"{count} trail entries wait for their causes")
        tx.session.add(
            parked(
                consumer=self.consumer,
                event_id=env.event_id,
                case_id=entry.case_id,
                follows=list(entry.follows),
                value=env.to_bytes(),
                parked_at=utcnow(),
            )
        )
        await tx.session.flush()
        if tx.batch is not None:
            (await tx.batch.parked(self.consumer))[env.event_id] = entry.case_id
        self.stats.parked_total += 1
        log.info(
            "trail entry parked until its cause arrives",
            extra={"consumer": self.consumer, "case_id": entry.case_id, "seq": entry.seq},
        )

    async def _release(self, tx: Tx, case_id: str, apply: TrailApply) -> None:
        parked = self.delivery.tables.parked
        if tx.batch is not None and case_id not in (await tx.batch.parked(self.consumer)).values():
            return  # nothing of this case waits (known without a query)
        progress = True
        while progress:
            progress = False
            rows = (
                await tx.session.exec(
                    select(parked)
                    .where(parked.consumer == self.consumer, parked.case_id == case_id)
                    .order_by(parked.id)
                )
            ).all()
            for row in rows:
                env = Envelope.from_bytes(row.value)
                entry = TrailAppended.model_validate(env.payload)
                if not await self._ready(tx, entry):
                    continue
                await tx.session.delete(row)
                await tx.session.flush()
                if tx.batch is not None:
                    (await tx.batch.parked(self.consumer)).pop(row.event_id, None)
                await apply(tx, env, entry)
                self.stats.released_total += 1
                progress = True


class RelayStalled(RuntimeError):
    """Some outbox rows could not be published in this attempt."""


class OutboxRelay:
    """Publishes committed outbox rows with the idempotent producer and deletes them once sent.

    Per key (the case id; a source reference for feedback) rows go out strictly in outbox
    order on the idempotent producer (which keeps a partition's order), and a failure stops the
    rest of that key's rows until the next attempt. Each attempt reads only the columns it
    sends, hands the whole batch to the bus in one call (keys side by side) and deletes the
    acknowledged rows in the same transaction, so an attempt that fails half-way never sends
    the acknowledged half again. The outbox holds only what is unsent: it does not grow with
    the service's history (the trail and the topics keep that), and no sealed payload stays
    at rest longer than its delivery takes. One publisher per database (an advisory lock on
    PostgreSQL). An idle relay polls less and less often (next_wait); a commit wakes it at once.
    """

    # after this many attempts in a row that published nothing while rows were pending,
    # the relay reports itself stalled (readiness fails, `stalled` is exposed to metrics)
    STALL_AFTER = 3

    def __init__(
        self,
        delivery: Delivery,
        bus: Bus,
        interval_s: float = 0.5,
        batch: int = 500,
        idle_max_s: float | None = None,
        linger_s: float = 0.0,
    ) -> None:
        self.delivery, self.bus, self.interval_s, self.batch = delivery, bus, interval_s, batch
        self.linger_s = linger_s  # a wake-up waits this long for more commits
        # polls that find nothing back off from interval_s to this (a commit wakes it at once):
        # ten intervals, at most 5 s
        if idle_max_s is None:
            idle_max_s = min(5.0, 10 * interval_s)
        self.idle_max_s = max(interval_s, idle_max_s)
        self._contended = False  # the last poll found another instance publishing (PostgreSQL)
        self._stmts: tuple[Any, Any, Any] | None = None
        self.idle_polls = 0  # polls in a row that found nothing to send
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one publisher per process: no row is sent twice
        # counters another module's /metrics reads as plain attributes
        self.published_total = 0
        self.failed_attempts_total = 0
        self.attempts_without_progress = 0
        self.last_error: str | None = None

    @property
    def stalled(self) -> bool:
        """Whether the relay has pending rows it has failed to publish several times in a row."""
        return self.attempts_without_progress >= self.STALL_AFTER

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows; return how many were sent.

        Raises RelayStalled (after marking what was acknowledged) when some rows failed.
        """
        async with self._lock:
            sent, error = await self._publish_batch()
        self.published_total += sent
        if error is None:
            self.attempts_without_progress = 0
            self.last_error = None
            return sent
        self.failed_attempts_total += 1
        self.attempts_without_progress = 0 if sent else self.attempts_without_progress + 1
        self.last_error = type(error).__name__
        raise RelayStalled(f"{sent} rows published, the rest failed: {self.last_error}") from error

    def _statements(self) -> tuple[Any, Any, Any]:
        """The relay's statements, built once (SQLAlchemy caches their compiled form by
        structure, but building a statement per attempt cost more than running it)."""
        if self._stmts is None:  # unsent rows; delete them all (PostgreSQL); one (SQLite)
            outbox = self.delivery.tables.outbox.__table__
            c = outbox.c
            pending = select(c.id, c.topic, c.key, c.value).order_by(c.id).limit(self.batch)
            sent = delete(outbox).where(c.id.in_(bindparam("ids", expanding=True)))
            sent_one = delete(outbox).where(c.id == bindparam("b_id"))
            self._stmts = (pending, sent, sent_one)
        return self._stmts

    async def _publish_batch(self) -> tuple[int, BaseException | None]:
        pending, sent, sent_one = self._statements()
        engine: AsyncEngine = self.delivery.sessions.kw["bind"]
        # a Core connection, no ORM session: the relay reads and marks plain rows
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # one publisher per database at a time: two instances taking rows of one case
                # side by side would send them out of order
                got = await conn.execute(_RELAY_LOCK, {"k": _RELAY_LOCK_KEY})
                if not got.scalar():
                    self._contended = True
                    return 0, None
            self._contended = False
            rows = await fastsql.fetch(conn, pending)
            if not rows:
                return 0, None
            by_key: dict[str | None, list[tuple[int, OutgoingMessage]]] = {}
            for row_id, topic, key, value in rows:
                by_key.setdefault(key, []).append(
                    (row_id, OutgoingMessage(topic, key, value, headers_for(value)))
                )
            groups = list(by_key.values())
            # one call for the batch: each key's rows in order, the keys side by side; when a
            # key fails part-way only its acknowledged head is marked (the rest go next time,
            # after it, in order)
            try:
                results = await self.bus.publish_groups([[m for _, m in rs] for rs in groups])
            except Exception as exc:  # no producer at all: nothing was sent
                results = [(0, exc)] * len(groups)
            acked: list[int] = []
            errors: list[BaseException] = []
            for rs, (n, error) in zip(groups, results, strict=True):
                acked.extend(i for i, _ in rs[:n])
                if error is not None:
                    errors.append(error)
            if acked:
                if fastsql.driver(conn) is not None:  # SQLite: an executemany of plain rows
                    await fastsql.update_rows(conn, sent_one, [{"b_id": i} for i in acked])
                else:
                    await conn.execute(sent, {"ids": acked})
        return len(acked), (errors[0] if errors else None)

    def next_wait(self, idle_polls: int) -> float:
        """How long to wait for a wake-up after `idle_polls` polls in a row found nothing.

        Every commit of this process wakes the relay at once, so the poll only catches rows it
        was not told of (another process's, or what a failed attempt left): it doubles from
        interval_s up to idle_max_s while nothing happens, and an idle service stops
        reading its outbox several times a second.
        """
        return min(self.interval_s * float(2 ** min(idle_polls, 16)), self.idle_max_s)

    async def run(self) -> None:
        """Loop until cancelled: publish, then wait for a wake-up or the (backed-off) interval."""
        while True:
            # clear before reading: a commit during the batch wakes the next round at once
            self.delivery.wakeup.clear()
            try:
                sent = await self.publish_pending()
                total = sent
                while sent >= self.batch:
                    sent = await self.publish_pending()
                    total += sent
                # another instance publishing may leave rows behind: keep the short interval
                self.idle_polls = 0 if total or self._contended else self.idle_polls + 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.idle_polls = 0
                log.error(
                    "outbox relay failed; will retry",
                    extra={
                        "error": type(exc.__cause__ or exc).__name__,
                        "stalled": self.stalled,
                        "attempts_without_progress": self.attempts_without_progress,
                    },
                )
                await asyncio.sleep(1)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # arrives just as the wake-up fires, and stop() then waits for ever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.next_wait(max(0, self.idle_polls - 1))):
                    await self.delivery.wakeup.wait()
                    if self.linger_s > 0:  # let commits close together share one publish
                        await asyncio.sleep(self.linger_s)

    def start(self) -> None:
        """Start the relay task."""
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Publish what is left, then stop."""
        if self._task is not None:
            async with self._lock:  # never cancel a batch that was sent but not yet marked
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.publish_pending()


def run_migrations(sync_conn: Any, migrations_dir: Path) -> None:
    """Apply a service's Alembic history on an open connection (called via run_sync)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine, migrations_dir: Path) -> None:
    """Bring a service's database to the newest schema (one migrator at a time on PostgreSQL)."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # replicas starting together wait their turn
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('fengqiao.migrate'))"))
        await conn.run_sync(run_migrations, migrations_dir)


async def ping_db(engine: AsyncEngine) -> bool:
    """Whether the database answers."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
