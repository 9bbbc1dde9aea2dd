"""Database plumbing: engines, the outbox/inbox/trail tables, the unit of work, the relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, DateTime, Index, event, func, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.bus import Bus, OutgoingMessage
from shared.contracts import REGISTRY, TrailAppended, produce_trail_details
from shared.events import Envelope, utcnow
from shared.tracing import headers_for

log = logging.getLogger("fengqiao.db")

_RELAY_LOCK_KEY = 0x0F3A_0B0C  # the outbox relay's advisory lock (one per service database)


def make_engine(url: str) -> AsyncEngine:
    """Create an async engine; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        memory = url.endswith("://") or ":memory:" in url
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
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
        __tablename__ = "outbox"
        __table_args__ = (Index("ix_outbox_unpublished", "published_at", "id"),)
        id: int | None = Field(default=None, primary_key=True)
        event_id: str = Field(unique=True, max_length=64)
        topic: str = Field(max_length=200)
        key: str | None = Field(default=None, max_length=200)
        value: bytes
        created_at: datetime = tz(nullable=False)
        published_at: datetime | None = tz(nullable=True)

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


class Tx:
    """One business transaction: state changes, trail entries and outgoing events together."""

    def __init__(self, session: AsyncSession, delivery: Delivery, cause: Envelope | None) -> None:
        self.session, self.delivery, self.cause = session, delivery, cause
        self.emitted: list[Envelope] = []
        # what seal() links into causal order before commit: (envelope, its outbox row)
        self._outgoing: list[tuple[Envelope, Any]] = []

    def emit(self, topic: str, event_type: str, payload: BaseModel, case_id: str) -> Envelope:
        """Queue an event in the outbox (published by the relay after commit)."""
        env = REGISTRY.event(
            payload,
            event_type=event_type,
            producer=self.delivery.producer,
            case_id=case_id,
            cause=self.cause,
        )
        row = self.delivery.tables.outbox(
            event_id=env.event_id,
            topic=topic,
            key=case_id,
            value=env.to_bytes(),
            created_at=utcnow(),
        )
        self.session.add(row)
        self.emitted.append(env)
        self._outgoing.append((env, row))
        return env

    async def seal(self) -> None:
        """Link this transaction's trail entries and events into the case's causal order.

        Each trail entry follows the newest entries this service knows of for its case (its own
        last one, and the head its cause carried); each event carries the head it leaves, so the
        service acting on it writes entries that follow it. Called once, just before commit.
        """
        heads_table = self.delivery.tables.trail_heads
        if heads_table is None or not self._outgoing:
            return
        cases: dict[str, list[tuple[Envelope, Any]]] = {}
        for env, row in self._outgoing:
            cases.setdefault(env.case_id, []).append((env, row))
        for case_id, outgoing in cases.items():
            stored = await self.session.get(heads_table, case_id)
            heads = set(stored.heads) if stored is not None else set()
            seq = stored.seq if stored is not None else 0
            if self.cause is not None and self.cause.case_id == case_id:
                # what we did and what caused this: the new entry follows both
                heads |= set(self.cause.trail_head)
                seq = max(seq, self.cause.trail_seq)
            before = (sorted(heads), seq)
            for env, row in outgoing:
                if env.event_type == "trail.appended":
                    env.payload["follows"], env.payload["seq"] = sorted(heads), seq + 1
                    heads, seq = {env.event_id}, seq + 1
                    row.value = env.to_bytes()
            for env, row in outgoing:
                if env.event_type != "trail.appended":
                    env.trail_head, env.trail_seq = sorted(heads), seq
                    row.value = env.to_bytes()
            if (sorted(heads), seq) == before:
                continue
            if stored is None:
                self.session.add(heads_table(case_id=case_id, heads=sorted(heads), seq=seq))
            else:
                stored.heads, stored.seq = sorted(heads), seq
                self.session.add(stored)

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
        self.session.add(
            self.delivery.tables.trail(
                case_id=case_id,
                at=entry.at,
                actor=actor,
                actor_role=actor_role,
                action=action,
                from_status=from_status,
                to_status=to_status,
                reason=reason,
                details=entry.details,
                event_id=env.event_id,
            )
        )
        return env


class Delivery:
    """Transactions with outbox and inbox for one service, and the relay's wake-up signal."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tables: DeliveryTables,
        producer: str,
        trail_topic: str,
    ) -> None:
        self.sessions, self.tables = sessions, tables
        self.producer, self.trail_topic = producer, trail_topic
        self.wakeup = asyncio.Event()

    @asynccontextmanager
    async def transaction(self, cause: Envelope | None = None) -> AsyncIterator[Tx]:
        """Open a transaction; commits on success, wakes the relay if events were queued."""
        async with self.sessions() as session, session.begin():
            tx = Tx(session, self, cause)
            yield tx
            await tx.seal()
        if tx.emitted:
            self.wakeup.set()

    async def handle_once(
        self, consumer: str, env: Envelope, fn: Callable[[Tx], Awaitable[None]]
    ) -> bool:
        """Run fn in a transaction unless this consumer already processed env (inbox)."""
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
    """

    def __init__(self, delivery: Delivery, consumer: str, max_parked: int = 10_000) -> None:
        self.delivery, self.consumer, self.max_parked = delivery, consumer, max_parked
        self.stats = CausalStats()

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

    async def _ready(self, tx: Tx, entry: TrailAppended) -> bool:
        if not entry.follows:
            return True
        inbox, parked = self.delivery.tables.inbox, self.delivery.tables.parked
        seen = await tx.session.exec(
            select(inbox.event_id).where(
                inbox.consumer == self.consumer, inbox.event_id.in_(entry.follows)
            )
        )
        if len(set(seen.all())) < len(set(entry.follows)):
            return False
        waiting = await tx.session.exec(
            select(parked.event_id).where(
                parked.consumer == self.consumer, parked.event_id.in_(entry.follows)
            )
        )
        return not waiting.all()

    async def _park(self, tx: Tx, env: Envelope, entry: TrailAppended) -> None:
        parked = self.delivery.tables.parked
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
        self.stats.parked_total += 1
        log.info(
            "trail entry parked until its cause arrives",
            extra={"consumer": self.consumer, "case_id": entry.case_id, "seq": entry.seq},
        )

    async def _release(self, tx: Tx, case_id: str, apply: TrailApply) -> None:
        parked = self.delivery.tables.parked
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
                await apply(tx, env, entry)
                self.stats.released_total += 1
                progress = True


class RelayStalled(RuntimeError):
    """Some outbox rows could not be published in this attempt."""


class OutboxRelay:
    """Publishes committed outbox rows with the idempotent producer and marks them sent.

    Per key (the case id; a source reference for feedback) rows go out strictly in outbox
    order: a row is sent only after the one before it was acknowledged, and a failure stops the
    rest of that key's rows until the next attempt. Rows are marked sent as they are
    acknowledged, so an attempt that fails half-way never sends the acknowledged half again.
    Keys are independent of each other and are sent concurrently.
    """

    # after this many attempts in a row that published nothing while rows were pending,
    # the relay reports itself stalled (readiness fails, `stalled` is exposed to metrics)
    STALL_AFTER = 3

    def __init__(
        self, delivery: Delivery, bus: Bus, interval_s: float = 0.5, batch: int = 500
    ) -> None:
        self.delivery, self.bus, self.interval_s, self.batch = delivery, bus, interval_s, batch
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

    async def _publish_batch(self) -> tuple[int, BaseException | None]:
        outbox = self.delivery.tables.outbox
        async with self.delivery.sessions() as session, session.begin():
            if self.delivery.sessions.kw["bind"].dialect.name == "postgresql":
                # one publisher per database at a time: two instances taking rows of one case
                # side by side would send them out of order
                got = await session.exec(  # type: ignore[call-overload]
                    text("SELECT pg_try_advisory_xact_lock(:k)").bindparams(k=_RELAY_LOCK_KEY)
                )
                if not got.scalar():
                    return 0, None
            stmt = select(outbox).where(outbox.published_at.is_(None)).order_by(outbox.id)
            rows = (await session.exec(stmt.limit(self.batch))).all()
            if not rows:
                return 0, None
            by_key: dict[str | None, list[Any]] = {}
            for r in rows:
                by_key.setdefault(r.key, []).append(r)
            acked: list[Any] = []

            async def send_in_order(key_rows: list[Any]) -> None:
                for r in key_rows:
                    await self.bus.publish(
                        [OutgoingMessage(r.topic, r.key, r.value, headers_for(r.value))]
                    )
                    acked.append(r)

            results = await asyncio.gather(
                *(send_in_order(rs) for rs in by_key.values()), return_exceptions=True
            )
            now = utcnow()
            for r in acked:
                r.published_at = now
            errors = [e for e in results if isinstance(e, BaseException)]
        for e in errors:
            if isinstance(e, asyncio.CancelledError):
                raise e
        return len(acked), (errors[0] if errors else None)

    async def run(self) -> None:
        """Loop until cancelled: publish, then wait for a wake-up or the interval."""
        while True:
            # clear before reading: a commit during the batch wakes the next round at once
            self.delivery.wakeup.clear()
            try:
                while await self.publish_pending() >= self.batch:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
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
                async with asyncio.timeout(self.interval_s):
                    await self.delivery.wakeup.wait()

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
