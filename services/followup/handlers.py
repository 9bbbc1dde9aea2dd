"""Follow-up handlers: one transaction each (ledger append, visit schedule, visit record)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import update
from sqlmodel import col

from services.followup import repository as repo
from services.followup.case_rows import Head, case_rows
from services.followup.domain import (
    Scope,
    may_record_visits,
    utc,
    visit_outcome,
    visit_schedule,
)
from services.followup.ledger import (
    GENESIS_HASH,
    CaseProjection,
    EntryContent,
    clean_details,
    entry_hash,
    project,
)
from services.followup.repository import FollowupCase, LedgerCase, LedgerEntry, Visit
from shared.clock import Clock
from shared.contracts import CaseAgreed, CaseClosed, CaseReopened, TrailAppended
from shared.contracts import CaseStatus as S
from shared.db import CausalGate, Delivery, Tx
from shared.events import Envelope, new_id
from shared.pii import PiiCipher, redact_text
from shared.topics import Topics

ACTOR = "system:followup"
LEDGER_CONSUMER = "followup.ledger"
AGREED_CONSUMER = "followup.agreed"


class CaseNotFound(Exception):
    """The case does not exist for this member of staff."""


class NotInFollowUp(Exception):
    """The case is not in follow-up, so no visit can be recorded."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the case is {status}, not in follow-up")
        self.status = status


class VisitConflict(Exception):
    """Another visit of the same case was recorded at the same moment."""


@dataclass(frozen=True)
class VisitReport:
    """What a member of staff records about one visit."""

    method: str
    honoured: bool
    satisfaction: int | None
    note: str | None


class LedgerHook(Protocol):
    """Something kept up to date with the projection, in the same transaction (warnings, stats)."""

    async def after_entry(
        self, tx: Tx, ev: TrailAppended, before: CaseProjection | None, after: CaseProjection
    ) -> None:
        """Called after each entry is projected; `before` is None for a case new to the ledger."""
        ...


class LedgerHandlers:
    """Appends every trail entry of every service to the chained ledger and projects the case."""

    def __init__(self, delivery: Delivery, hooks: Sequence[LedgerHook] = ()) -> None:
        self.delivery, self.hooks = delivery, list(hooks)
        self.gate = CausalGate(delivery, LEDGER_CONSUMER)
        self.ids = LedgerIds()

    async def trail_appended(self, env: Envelope, ev: TrailAppended) -> None:
        """Chain the entry after the entries it follows and update the case projection.

        An entry that arrives before one it follows waits (parked) until that one is chained.
        """

        async def apply(tx: Tx, env: Envelope, ev: TrailAppended) -> None:
            await self.append(tx, env, ev)

        await self.gate.handle(env, ev, apply)

    async def append(self, tx: Tx, env: Envelope, ev: TrailAppended) -> None:
        """Append one entry (inside the caller's transaction).

        The entry's id (the ledger's global sequence, the case's `version`) is given here, not
        by the database; the entry row is queued with the transaction's other entries (one
        executemany as it commits) and the case's row kept in the transaction's CaseRows
        (read once per batch, one upsert executemany as it commits): no ORM object, no flush.
        """
        cases = case_rows(tx)
        head = await cases.get(tx, ev.case_id)  # a batch reads its cases' rows at once
        seq = head.entries + 1 if head is not None else 1
        prev = head.last_hash if head is not None else GENESIS_HASH
        at = utc(ev.at)
        content = EntryContent(
            case_id=ev.case_id,
            seq=seq,
            at=at,
            actor=ev.actor[:100],
            actor_role=ev.actor_role[:40],
            action=ev.action[:40],
            from_status=ev.from_status,
            to_status=ev.to_status,
            reason=redact_text(ev.reason),
            details=clean_details(ev.details),
            follows=tuple(ev.follows),
        )
        digest = entry_hash(prev, content)
        entry_id = await self.ids.next(tx)
        tx.add_rows(
            _ENTRIES,
            [
                {
                    "id": entry_id,
                    "case_id": content.case_id,
                    "seq": seq,
                    "event_id": env.event_id,
                    "producer": env.producer[:40],
                    "at": at,
                    "actor": content.actor,
                    "actor_role": content.actor_role,
                    "action": content.action,
                    "from_status": content.from_status,
                    "to_status": content.to_status,
                    "reason": content.reason,
                    "details": content.details,
                    "follows": list(content.follows),
                    "prev_hash": prev,
                    "hash": digest,
                    "recorded_at": utc(env.occurred_at),
                }
            ],
        )
        before = head.projection if head is not None else CaseProjection(case_id=ev.case_id)
        after = project(before, content)
        cases.put(ev.case_id, Head(after, seq, digest, entry_id))
        for hook in self.hooks:
            await hook.after_entry(tx, ev, before if head is not None else None, after)


_ENTRIES = LedgerEntry.__table__  # type: ignore[attr-defined]


class LedgerIds:
    """Hands out the ledger's global sequence (entry ids) without asking per entry.

    PostgreSQL: a block of the table's own sequence per transaction (one round trip; a block
    runs out only when a batch releases parked entries), so several instances never collide.
    SQLite: the highest id stored, read once per transaction, and never below what this process
    gave out (two transactions of one process in flight); SQLite writes one transaction at a
    time, and a writer in another process that got in first fails this one (busy snapshot or
    the primary key), which is then replayed. Ids of a transaction that rolls back stay unused.
    """

    KEY = "followup.ledger_ids"

    def __init__(self) -> None:
        self.high = 0  # the highest id this process gave out

    async def next(self, tx: Tx) -> int:
        """The next id for an entry of this transaction (increasing in the order asked)."""
        info = tx.session.sync_session.info
        # the dialect from the session's engine: asking for the connection is a greenlet
        # round trip, per entry, when a batch's ids come from memory
        if tx.session.get_bind().dialect.name == "postgresql":
            pool: list[int] | None = info.get(self.KEY)
            if not pool:
                conn = await tx.session.connection()
                n = min(max(len(tx.batch.ids), 1), 1000) if tx.batch is not None else 1
                got = await conn.exec_driver_sql(
                    "SELECT nextval(pg_get_serial_sequence('ledger_entries', 'id'))"
                    f" FROM generate_series(1, {int(n)})"
                )
                pool = info[self.KEY] = sorted(int(r[0]) for r in got.all())
            return pool.pop(0)
        if self.KEY not in info:  # SQLite: the stored ids, read once per transaction
            info[self.KEY] = True
            conn = await tx.session.connection()
            top = await conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM ledger_entries")
            self.high = max(self.high, int(top.one()[0]))
        self.high += 1
        return self.high


class FollowupHandlers:
    """Schedules visits after an agreement and records them (回访)."""

    def __init__(
        self,
        delivery: Delivery,
        topics: Topics,
        cipher: PiiCipher,
        clock: Clock,
        offsets_days: list[int],
    ) -> None:
        self.delivery, self.topics, self.cipher = delivery, topics, cipher
        self.clock, self.offsets_days = clock, offsets_days

    async def case_agreed(self, env: Envelope, ev: CaseAgreed) -> None:
        """An agreement was reached: schedule the visits and move the case to follow-up."""

        async def work(tx: Tx) -> None:
            s = tx.session
            now = self.clock.now()
            fc = await s.get(FollowupCase, ev.case_id)
            if fc is not None and fc.agreement_id == ev.agreement_id:
                return  # the same agreement announced twice
            if fc is None:
                fc = FollowupCase(
                    case_id=ev.case_id,
                    status=S.follow_up,
                    agreement_id=ev.agreement_id,
                    round=1,
                    agreed_at=utc(ev.agreed_at),
                    channel=ev.channel,
                    tier=ev.tier,
                    updated_at=now,
                )
            else:  # agreed again after a reopening: a new round of visits
                for v in await repo.open_visits(s, ev.case_id, fc.round):
                    v.state = "cancelled"
                    s.add(v)
                fc.round += 1
                fc.agreement_id, fc.agreed_at = ev.agreement_id, utc(ev.agreed_at)
                fc.channel, fc.tier, fc.status = ev.channel, ev.tier, S.follow_up
            fc.honoured_visits = 0
            fc.organisation_id, fc.mediator_id, fc.updated_at = (
                ev.organisation_id,
                ev.mediator_id,
                now,
            )
            s.add(fc)
            dues = visit_schedule(ev.agreed_at, self.offsets_days)
            for number, due in enumerate(dues, start=1):
                s.add(
                    Visit(
                        id=new_id(),
                        case_id=ev.case_id,
                        round=fc.round,
                        number=number,
                        agreement_id=ev.agreement_id,
                        state="scheduled",
                        due_at=due,
                    )
                )
            tx.transition(
                ev.case_id,
                action="follow_up",
                from_status=S.agreed,
                to_status=S.follow_up,
                actor=ACTOR,
                reason=f"agreement reached; {len(dues)} visits scheduled",
                details={
                    "agreement_id": ev.agreement_id,
                    "round": fc.round,
                    "channel": ev.channel,
                    "tier": ev.tier,
                    "organisation_id": ev.organisation_id,
                    "mediator_id": ev.mediator_id,
                    "visits_due": [d.isoformat() for d in dues],
                },
                at=now,
            )

        await self.delivery.handle_once(AGREED_CONSUMER, env, work)

    async def record_visit(
        self, case_id: str, scope: Scope, actor: str, actor_role: str, report: VisitReport
    ) -> tuple[Visit, str]:
        """Record a visit; reopen or close the case as the outcome says. Returns (visit, status).

        Raises CaseNotFound outside the caller's scope, NotInFollowUp when the case is not in
        follow-up, VisitConflict when another visit of the case was recorded at the same time.
        """
        async with self.delivery.transaction() as tx:
            s = tx.session
            fc = await s.get(FollowupCase, case_id)
            ledger = await s.get(LedgerCase, case_id)
            if fc is None or not may_record_visits(scope, repo.followup_scope_facts(fc, ledger)):
                raise CaseNotFound(case_id)
            if fc.status != S.follow_up:
                raise NotInFollowUp(fc.status)
            now = self.clock.now()
            outcome = visit_outcome(report.honoured, fc.honoured_visits)
            # the case row changes only if nobody recorded a visit meanwhile
            changed = await s.exec(
                update(FollowupCase)
                .where(
                    col(FollowupCase.case_id) == case_id,
                    col(FollowupCase.status) == S.follow_up,
                    col(FollowupCase.honoured_visits) == fc.honoured_visits,
                )
                .values(
                    status=outcome.to_status,
                    updated_at=now,
                    honoured_visits=fc.honoured_visits + int(report.honoured),
                )
            )
            if changed.rowcount != 1:
                raise VisitConflict(case_id)
            pending = await repo.open_visits(s, case_id, fc.round)
            if pending:
                visit = pending[0]
            else:  # an extra visit beyond the schedule
                done = [v for v in await repo.visits_of(s, case_id) if v.round == fc.round]
                visit = Visit(
                    id=new_id(),
                    case_id=case_id,
                    round=fc.round,
                    number=len(done) + 1,
                    agreement_id=fc.agreement_id,
                    state="scheduled",
                    due_at=None,
                )
            visit.state, visit.method, visit.honoured = "done", report.method, report.honoured
            visit.satisfaction, visit.recorded_at, visit.recorded_by = (
                report.satisfaction,
                now,
                actor,
            )
            visit.note_sealed = self.cipher.encrypt(report.note) if report.note else None
            s.add(visit)
            if outcome.closes or outcome.reopens:
                for v in pending[1:]:
                    v.state = "cancelled"
                    s.add(v)
            details: dict[str, Any] = {
                "visit_id": visit.id,
                "visit_number": visit.number,
                "round": fc.round,
                "agreement_id": fc.agreement_id,
                "method": report.method,
                "honoured": report.honoured,
                "satisfaction": report.satisfaction,
            }
            tx.transition(
                case_id,
                action=outcome.action,
                from_status=S.follow_up,
                to_status=outcome.to_status,
                actor=actor,
                actor_role=actor_role,
                reason=outcome.reason,
                details=details,
                at=now,
            )
            if outcome.reopens:
                tx.emit(
                    self.topics.followup,
                    "case.reopened",
                    CaseReopened(case_id=case_id, reason=outcome.reason, visit_id=visit.id),
                    case_id,
                )
            if outcome.closes:
                tx.emit(
                    self.topics.followup,
                    "case.closed",
                    CaseClosed(case_id=case_id, outcome="agreement honoured"),
                    case_id,
                )
            return visit, outcome.to_status
