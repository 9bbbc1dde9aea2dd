"""Intake tables and the only queries on them.

Personal data never sits here in clear: a report's narrative, reporter, parties and location
are sealed together in one encrypted value (`sealed_enc`; reports stored before it have one
value per field, `*_enc`); phones and ID numbers are also kept as keyed hashes
(`party_index`) so that reports can be matched for merging without decrypting.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint, bindparam
from sqlalchemy import select as core_select
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import delivery_tables, json_column, tz

CLOSED_STATUSES = frozenset({"closed", "transferred", "merged"})


class IntakeBase(SQLModel, registry=registry()):
    """Base of the intake service's own tables."""


class Integrator(IntakeBase, table=True):
    """A source system allowed to submit reports: one API key, bound to one source."""

    __tablename__ = "integrators"
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    source: str = Field(max_length=10, index=True)
    api_key_hash: str = Field(unique=True, max_length=64)
    callback_url: str | None = Field(default=None, max_length=1000)
    webhook_secret_enc: str | None = None
    active: bool = True
    created_at: datetime = tz(nullable=False)


class IntakeCase(IntakeBase, table=True):
    """A case as intake knows it: its first report, repeats, and a projection of the trail."""

    __tablename__ = "intake_cases"
    case_id: str = Field(primary_key=True, max_length=64)
    source: str = Field(max_length=10)
    source_ref: str = Field(max_length=128)
    status: str = Field(max_length=40)
    status_at: datetime = tz(nullable=False)
    status_reason: str = ""
    dispute_type: str | None = Field(default=None, max_length=40)
    guessed_type: str | None = Field(default=None, max_length=40)
    channel: str | None = Field(default=None, max_length=40)
    repeat_count: int = 1
    received_at: datetime = tz(nullable=False, index=True)
    # who may read the case (shared.scope): its area from the report, the rest from the trail
    tier: str | None = Field(default=None, max_length=16)
    grid_code: str | None = Field(default=None, max_length=128)
    organisation_id: str | None = Field(default=None, max_length=128)
    mediator_id: str | None = Field(default=None, max_length=128)
    co_channels: list[str] = json_column()
    # who sent the first report (None: a source system on Kafka); 并单 stays within one sender
    integrator_id: str | None = Field(default=None, max_length=64)


class IntakeReport(IntakeBase, table=True):
    """Every accepted report, new or merged; `(source, source_ref)` is unique."""

    __tablename__ = "intake_reports"
    __table_args__ = (UniqueConstraint("source", "source_ref", name="uq_report_source_ref"),)
    report_id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    source: str = Field(max_length=10)
    source_ref: str = Field(max_length=128)
    via: str = Field(max_length=20)
    integrator_id: str | None = Field(default=None, max_length=64)
    merged: bool = False
    reported_at: datetime | None = tz(nullable=True)
    received_at: datetime = tz(nullable=False)
    category: str | None = Field(default=None, max_length=200)
    service_code: str | None = Field(default=None, max_length=40)
    grid_code: str | None = Field(default=None, max_length=64)
    # text, reporter, parties and location sealed together (they are always read together)
    sealed_enc: str | None = None
    # reports stored before sealed_enc: one encrypted value per field
    text_enc: str | None = None
    reporter_enc: str | None = None
    parties_enc: str | None = None
    location_enc: str | None = None


class PartyIndex(IntakeBase, table=True):
    """Keyed hashes of the parties' phones and ID numbers, for merge matching (并单)."""

    __tablename__ = "party_index"
    __table_args__ = (Index("ix_party_index_hash", "hash"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(max_length=64, index=True)
    report_id: str = Field(max_length=64)
    kind: str = Field(max_length=20)
    hash: str = Field(max_length=64)
    created_at: datetime = tz(nullable=False)


class WebhookDelivery(IntakeBase, table=True):
    """A signed status callback to an integrator, retried with backoff until a 2xx."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_pending", "delivered_at", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    integrator_id: str = Field(max_length=64)
    case_id: str = Field(max_length=64)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    attempts: int = 0
    next_attempt_at: datetime = tz(nullable=False)
    delivered_at: datetime | None = tz(nullable=True)
    last_status: int | None = None
    created_at: datetime = tz(nullable=False)


class RateBucket(IntakeBase, table=True):
    """A token bucket shared by every intake instance: per API key, and per client address for
    failed keys (a key guesser is slowed down, not just the keys that work)."""

    __tablename__ = "rate_buckets"
    key: str = Field(primary_key=True, max_length=100)
    tokens: float
    updated: float  # seconds (time.time) of the last take


_R = IntakeReport.__table__  # type: ignore[attr-defined]
_C = IntakeCase.__table__  # type: ignore[attr-defined]
_P = PartyIndex.__table__  # type: ignore[attr-defined]
# The receipt and feedback queries are built once per shape: an IN list of plain bound values,
# its length a power of two (a shorter list is padded with its last value, which matches
# nothing more). An expanding IN parameter re-rendered the SQL at every execution, which cost
# about as much as running the query; a few fixed shapes are compiled-cache hits.
BATCH_IN = 512  # the longest IN list; longer lists go in chunks


def _shape(n: int) -> int:
    """The IN list length for n values: the next power of two (at most BATCH_IN)."""
    return 1 if n <= 1 else min(BATCH_IN, 1 << (n - 1).bit_length())


def _in_values(prefix: str, values: Sequence[Any]) -> dict[str, Any]:
    """The parameters of an IN list of _shape(len(values)) `prefix<i>` binds."""
    size = _shape(len(values))
    padded = [*values, *[values[-1]] * (size - len(values))]
    return {f"{prefix}{i}": v for i, v in enumerate(padded)}


def _binds(prefix: str, n: int, type_: Any = None) -> list[Any]:
    return [bindparam(f"{prefix}{i}", type_=type_) for i in range(n)]


@functools.cache
def _reports_by_refs(sources: int, refs: int) -> Any:
    # the sources too: the unique index is (source, source_ref), and without its first column
    # the query scanned every stored report for each group
    return core_select(
        _R.c.case_id,
        _R.c.report_id,
        _R.c.source,
        _R.c.source_ref,
        _R.c.merged,
        _R.c.integrator_id,
    ).where(
        _R.c.source.in_(_binds("s", sources, _R.c.source.type)),
        _R.c.source_ref.in_(_binds("r", refs, _R.c.source_ref.type)),
    )


@functools.cache
def _open_cases_by_hash(hashes: int) -> Any:
    return (
        core_select(
            _P.c.hash,
            _C.c.case_id,
            _C.c.received_at,
            _C.c.status,
            _C.c.source,
            _C.c.integrator_id,
            _C.c.dispute_type,
            _C.c.guessed_type,
            _C.c.repeat_count,
        )
        .select_from(_P.join(_C, _P.c.case_id == _C.c.case_id))
        .where(
            _P.c.hash.in_(_binds("h", hashes, _P.c.hash.type)),
            _C.c.received_at >= bindparam("since", type_=_C.c.received_at.type),
            _C.c.status.not_in(
                [bindparam(f"c{i}", v) for i, v in enumerate(sorted(CLOSED_STATUSES))]
            ),
        )
    )


TABLES = delivery_tables(IntakeBase)
metadata = IntakeBase.metadata


async def report_by_ref(session: AsyncSession, source: str, source_ref: str) -> IntakeReport | None:
    """The report a source sent under its own reference, if any."""
    stmt = select(IntakeReport).where(
        IntakeReport.source == source, IntakeReport.source_ref == source_ref
    )
    return (await session.exec(stmt)).first()


async def reports_of_case(session: AsyncSession, case_id: str) -> list[IntakeReport]:
    """Every report of a case (the first and the merged ones), oldest first."""
    stmt = select(IntakeReport).where(IntakeReport.case_id == case_id)
    return list((await session.exec(stmt.order_by(col(IntakeReport.received_at)))).all())


@dataclass(frozen=True, slots=True)
class ReportRef:
    """Who sent a report of a case, as the status feedback needs it (no personal data)."""

    case_id: str
    source: str
    source_ref: str
    integrator_id: str | None
    merged: bool


@dataclass(frozen=True)
class StoredRef:
    """What a receipt says about a report already stored."""

    case_id: str
    report_id: str
    source: str
    source_ref: str
    merged: bool
    integrator_id: str | None  # who sent it (None: the source's own Kafka feed)


async def reports_by_refs(
    session: AsyncSession, refs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredRef]:
    """The reports stored under any of these (source, source_ref) pairs (one query per 512)."""
    out: dict[tuple[str, str], StoredRef] = {}
    wanted = set(refs)
    names = sorted({ref for _, ref in wanted})
    sources = sorted({source for source, _ in wanted})
    conn = await session.connection()
    for i in range(0, len(names), BATCH_IN):
        chunk = names[i : i + BATCH_IN]
        stmt = _reports_by_refs(_shape(len(sources)), _shape(len(chunk)))
        rows = await conn.execute(stmt, _in_values("s", sources) | _in_values("r", chunk))
        for case_id, report_id, source, source_ref, merged, integrator_id in rows:
            if (source, source_ref) in wanted:
                out[(source, source_ref)] = StoredRef(
                    case_id, report_id, source, source_ref, bool(merged), integrator_id
                )
    return out


@dataclass
class OpenCase:
    """A merge candidate (并单): an open case as the receipt path reads and updates it."""

    case_id: str
    received_at: datetime
    status: str
    source: str
    integrator_id: str | None
    dispute_type: str | None
    guessed_type: str | None
    repeat_count: int
    new: bool = False  # created by the reports being stored now
    merges: int = 0  # reports merged into it by the reports being stored now


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


async def open_cases_by_hash(
    session: AsyncSession, hashes: Sequence[str], since: datetime
) -> tuple[dict[str, OpenCase], dict[str, list[str]]]:
    """Open cases received since `since` whose parties share one of the hashes: the cases by
    id and, per hash, the ids of its cases (one query per 512 hashes)."""
    cases: dict[str, OpenCase] = {}
    by_hash: dict[str, list[str]] = {}
    wanted = sorted(set(hashes))
    if not wanted:
        return cases, by_hash
    conn = await session.connection()
    for i in range(0, len(wanted), BATCH_IN):
        chunk = wanted[i : i + BATCH_IN]
        stmt = _open_cases_by_hash(_shape(len(chunk)))
        for row in await conn.execute(stmt, _in_values("h", chunk) | {"since": since}):
            h, case_id = row[0], row[1]
            if case_id not in cases:
                cases[case_id] = OpenCase(
                    case_id, _utc(row[2]), row[3], row[4], row[5], row[6], row[7], row[8]
                )
            ids = by_hash.setdefault(h, [])
            if case_id not in ids:
                ids.append(case_id)
    return cases, by_hash


# what the trail projects onto a case (the feedback consumer reads and writes only these)
PROJECTED = (
    "status",
    "status_at",
    "status_reason",
    "dispute_type",
    "channel",
    "tier",
    "grid_code",
    "organisation_id",
    "mediator_id",
    "co_channels",
)
_I = Integrator.__table__  # type: ignore[attr-defined]


# a case's projection with each of its reports and whether the report's integrator takes
# webhooks: all the feedback consumer reads, one row per report (oldest first)
@functools.cache
def _feedback_view(cases: int) -> Any:
    return (
        core_select(
            _C.c.case_id,
            *(_C.c[n] for n in PROJECTED),
            _R.c.source,
            _R.c.source_ref,
            _R.c.integrator_id,
            _R.c.merged,
            _I.c.active,
            _I.c.callback_url,
        )
        .select_from(
            _C.outerjoin(_R, _R.c.case_id == _C.c.case_id).outerjoin(
                _I, _I.c.id == _R.c.integrator_id
            )
        )
        .where(_C.c.case_id.in_(_binds("i", cases, _C.c.case_id.type)))
        .order_by(_R.c.received_at)
    )


@dataclass
class CaseProjection:
    """A case's trail projection as plain values (no ORM object per event): read with one query
    per set of cases, its changed columns written with one executemany per set of columns."""

    case_id: str
    values: dict[str, Any]
    changed: set[str] = field(default_factory=set)

    def set(self, name: str, value: Any) -> None:
        """Set a column, remembering it changed when it did (only those are written)."""
        if self.values[name] != value:
            self.values[name] = value
            self.changed.add(name)


@dataclass
class FeedbackView:
    """What the status feedback needs of some cases: their projections (the cases intake has),
    who sent each case's reports (oldest first), and which integrators take webhooks."""

    cases: dict[str, CaseProjection] = field(default_factory=dict)
    reports: dict[str, list[ReportRef]] = field(default_factory=dict)
    hooks: dict[str, bool] = field(default_factory=dict)  # integrator id → active with a URL


async def feedback_view(session: AsyncSession, case_ids: Sequence[str]) -> FeedbackView:
    """The feedback view of these cases (one query per 512 cases)."""
    out = FeedbackView()
    ids = list(case_ids)
    conn = await session.connection()
    n = len(PROJECTED)
    for i in range(0, len(ids), BATCH_IN):
        chunk = ids[i : i + BATCH_IN]
        for row in await conn.execute(_feedback_view(_shape(len(chunk))), _in_values("i", chunk)):
            case_id = row[0]
            if case_id not in out.cases:
                values = dict(zip(PROJECTED, row[1 : n + 1], strict=True))
                out.cases[case_id] = CaseProjection(case_id, values)
                out.reports[case_id] = []
            source, source_ref, integrator_id, merged, active, url = row[n + 1 :]
            if source is None:
                continue  # a case without reports (left join)
            out.reports[case_id].append(
                ReportRef(case_id, source, source_ref, integrator_id, bool(merged))
            )
            if integrator_id is not None:
                out.hooks[integrator_id] = bool(active and url)
    return out


def projection_updates(
    projections: Iterable[CaseProjection],
) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The UPDATEs that write the changed columns: one statement and its rows per set of
    changed columns (cases in id order); the projections count as written afterwards."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for p in sorted(projections, key=lambda p: p.case_id):
        if p.changed:
            cols = tuple(n for n in PROJECTED if n in p.changed)
            row = {f"v_{n}": p.values[n] for n in cols}
            groups.setdefault(cols, []).append({"v_case_id": p.case_id} | row)
            p.changed = set()
    return [
        (
            _C.update()
            .where(_C.c.case_id == bindparam("v_case_id"))
            .values({n: bindparam(f"v_{n}", type_=_C.c[n].type) for n in cols}),
            rows,
        )
        for cols, rows in groups.items()
    ]


async def add_repeats(session: AsyncSession, counts: dict[str, int]) -> None:
    """Count reports merged into existing cases: repeat_count += n per case (one executemany)."""
    if not counts:
        return
    c = IntakeCase.__table__  # type: ignore[attr-defined]
    stmt = (
        c.update()
        .where(c.c.case_id == bindparam("cid"))
        .values(repeat_count=c.c.repeat_count + bindparam("n"))
    )
    conn = await session.connection()
    rows: list[dict[str, Any]] = [{"cid": k, "n": n} for k, n in sorted(counts.items())]
    await conn.execute(stmt, rows)


async def integrator_by_key_hash(session: AsyncSession, key_hash: str) -> Integrator | None:
    """The active integrator holding an API key (by its hash)."""
    stmt = select(Integrator).where(
        Integrator.api_key_hash == key_hash, col(Integrator.active).is_(True)
    )
    return (await session.exec(stmt)).first()


async def integrators_of_source(session: AsyncSession, source: str) -> list[Integrator]:
    """Every integrator bound to a source."""
    return list((await session.exec(select(Integrator).where(Integrator.source == source))).all())


async def claim_due_webhooks(
    session: AsyncSession, now: datetime, limit: int, claim_until: datetime
) -> list[WebhookDelivery]:
    """Claim undelivered callbacks whose next attempt is due, oldest first.

    Call inside a transaction. On PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED`, so
    concurrent senders on one database never pick the same row; each claimed row's
    `next_attempt_at` is pushed to `claim_until`, so once committed no other sender sees it as
    due until the claim runs out (the sender records the real outcome before that). SQLite
    ignores the lock clause: there a single process sends.
    """
    stmt = (
        select(WebhookDelivery)
        .where(
            col(WebhookDelivery.delivered_at).is_(None), col(WebhookDelivery.next_attempt_at) <= now
        )
        .order_by(col(WebhookDelivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list((await session.exec(stmt)).all())
    for row in rows:
        row.next_attempt_at = claim_until
        session.add(row)
    await session.flush()
    return rows
