"""Intake handlers: reports stored set-based per group or batch (cases, reports, party hashes,
trail and outbox in one transaction), and the status fed back to the sources."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError

from services.intake.canonical import CanonicalReport, Person
from services.intake.domain import (
    STATUS_NOTES,
    as_utc,
    guess_dispute_type,
    masked_text,
    merge_rank,
)
from services.intake.repository import (
    CaseProjection,
    FeedbackView,
    IntakeCase,
    IntakeReport,
    OpenCase,
    PartyIndex,
    ReportRef,
    WebhookDelivery,
    add_repeats,
    feedback_view,
    open_cases_by_hash,
    projection_updates,
    report_by_ref,
    reports_by_refs,
)
from shared.contracts import CaseStatus, PartyRef, ReportReceived, ReportRepeated, TrailAppended
from shared.db import Batch, CausalGate, Delivery, Tx
from shared.errors import Conflict
from shared.events import Envelope, new_id, utcnow
from shared.pii import PiiCipher, is_organisation, mask_name, redact_text
from shared.scope import scope_changes
from shared.topics import Topics

ACTOR = "system:intake"
FEEDBACK_CONSUMER = "intake.feedback"


@dataclass(frozen=True)
class Receipt:
    """What the sender of a report is told."""

    case_id: str
    report_id: str
    source: str
    source_ref: str
    merged: bool
    duplicate: bool


class RefTaken(Conflict):
    """A report's (source, source_ref) is already another integrator's: its receipt (that
    sender's case) is not this caller's to see, and the report is not stored."""

    def __init__(self) -> None:
        super().__init__(
            "source_ref is taken",
            [{"field": "source_ref", "reason": "already used on this source by another sender"}],
        )


def another_senders(owner: str | None, caller: str | None) -> bool:
    """Whether a report stored by `owner` is another integrator's than `caller`'s. The
    source's own Kafka feed (None) is every integrator of that source's, and theirs its."""
    return owner is not None and caller is not None and owner != caller


@dataclass(frozen=True)
class Incoming:
    """A valid report on its way to storage, and how it came."""

    report: CanonicalReport
    via: str
    integrator_id: str | None = None
    service_code: str | None = None


@dataclass
class _Group:
    """What one receipt transaction knows: open cases sharing its reports' parties (read once,
    then kept up to date in memory as its reports open cases or merge)."""

    cases: dict[str, OpenCase]
    by_hash: dict[str, list[str]]  # party hash → ids of the open cases with it
    new_rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # new case → its row


def party_ref(p: Person) -> PartyRef:
    """A party as events show it: persons masked, organisations named."""
    org = is_organisation(p.name)
    return PartyRef(
        role=p.role,
        kind="organisation" if org else "person",
        display=(p.name if org else mask_name(p.name)) or "",
    )


def event_text(report: CanonicalReport) -> str:
    """The narrative as events carry it: phone/ID numbers and the persons' names masked."""
    people = [report.reporter, *report.parties] if report.reporter else report.parties
    address = report.location.address if report.location else None
    return masked_text(report.text, [p.name for p in people], [address])


class IntakeHandlers:
    """Stores reports (new cases or merges) and feeds status back to the sources."""

    def __init__(
        self, delivery: Delivery, topics: Topics, cipher: PiiCipher, merge_window_hours: int = 72
    ) -> None:
        self.delivery, self.topics, self.cipher = delivery, topics, cipher
        self.merge_window = timedelta(hours=merge_window_hours)
        self.feedback_gate = CausalGate(delivery, FEEDBACK_CONSUMER)
        self.webhooks_due = asyncio.Event()

    # ---- receipt -------------------------------------------------------------------------

    async def receive(
        self,
        report: CanonicalReport,
        *,
        via: str,
        integrator_id: str | None = None,
        service_code: str | None = None,
    ) -> Receipt:
        """Store a report before answering: a new case, a merge into an open one, or a repeat."""
        item = Incoming(report, via, integrator_id, service_code)
        outer = self.delivery.current_batch() is not None
        for attempt in range(5):
            try:
                return (await self.receive_many([item]))[0]
            except IntegrityError:
                if outer:
                    raise  # the batch is rolled back and replayed report by report
                continue  # a concurrent duplicate won: the next round answers with its case
            except OperationalError:
                if attempt == 4 or outer:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))  # SQLite writer contention
        existing = await self.existing(report.source, report.source_ref, integrator_id)
        if existing is None:
            raise RuntimeError("report neither stored nor found")
        return existing

    async def receive_many(self, items: Sequence[Incoming]) -> list[Receipt]:
        """Store reports in one transaction, each seen as if they had come one after the other
        (a repeat of an earlier one is a duplicate, parties shared with an earlier one merge).

        Set-based: the reports already stored under the refs and the open cases sharing the
        parties are read once for all of them; cases, reports and party hashes are written by
        one executemany per table at commit. A reference stored meanwhile by someone else fails
        the whole transaction (IntegrityError at commit): callers then store one by one. Joins
        the batch in hand (it must hold nothing else of this service), else opens one.
        """
        batch = self.delivery.current_batch()
        if batch is None:
            async with self.delivery.batch([]) as batch:
                return await self._store_all(batch, items)
        return await self._store_all(batch, items)

    async def existing(
        self, source: str, source_ref: str, integrator_id: str | None = None
    ) -> Receipt | None:
        """The receipt of a report already stored under (source, source_ref); RefTaken when
        it is another integrator's than `integrator_id`'s."""
        async with self.delivery.sessions() as session:
            row = await report_by_ref(session, source, source_ref)
        if row is None:
            return None
        if another_senders(row.integrator_id, integrator_id):
            raise RefTaken
        return Receipt(row.case_id, row.report_id, row.source, row.source_ref, row.merged, True)

    def _hashes(self, report: CanonicalReport) -> list[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for p in report.parties:
            for kind, value in (("phone", p.phone), ("id_number", p.id_number)):
                h = self.cipher.blind_index(kind, value)
                if h:
                    out.add((kind, h))
        return sorted(out)

    async def _store_all(self, batch: Batch, items: Sequence[Incoming]) -> list[Receipt]:
        session = await batch.open()
        hashes = [self._hashes(i.report) for i in items]
        stored = await reports_by_refs(
            session, [(i.report.source, i.report.source_ref) for i in items]
        )
        since = utcnow() - self.merge_window
        cases, by_hash = await open_cases_by_hash(
            session, [h for hs in hashes for _, h in hs], since
        )
        group = _Group(cases, by_hash)
        receipts: list[Receipt] = []
        seen: dict[tuple[str, str], Receipt] = {}
        senders: dict[tuple[str, str], str | None] = {}
        # an id for each report's case should it open one; a new id has no trail heads yet, so
        # the batch knows them without a query (only the cases merged into are read)
        fresh = [new_id() for _ in items]
        batch.case_ids.update(fresh)
        batch.heads.fresh(fresh)
        for item, hs, case_id in zip(items, hashes, fresh, strict=True):
            key = (item.report.source, item.report.source_ref)
            if key in seen:  # sent twice in this group: the second is a repeat of the first
                if another_senders(senders[key], item.integrator_id):
                    raise RefTaken  # the group is stored again one by one: this one alone fails
                receipts.append(dataclasses.replace(seen[key], duplicate=True))
                continue
            old = stored.get(key)
            if old is not None and another_senders(old.integrator_id, item.integrator_id):
                raise RefTaken
            if old is not None:
                receipt = Receipt(
                    old.case_id, old.report_id, old.source, old.source_ref, old.merged, True
                )
            else:
                async with self.delivery.transaction() as tx:
                    receipt = self._store(tx, item, hs, group, case_id)
            seen[key], senders[key] = receipt, item.integrator_id
            receipts.append(receipt)
        for case_id, row in group.new_rows.items():  # queued, written at commit: final counts
            row["repeat_count"] = cases[case_id].repeat_count
        await add_repeats(
            session, {c.case_id: c.merges for c in cases.values() if c.merges and not c.new}
        )
        return receipts

    def _store(
        self,
        tx: Tx,
        item: Incoming,
        hashes: list[tuple[str, str]],
        group: _Group,
        fresh_case_id: str,
    ) -> Receipt:
        """One report of a group: a new case or a merge into an open one (in memory), its rows
        queued, its trail entry and event emitted."""
        report, integrator_id = item.report, item.integrator_id
        now = utcnow()
        guess = guess_dispute_type(report.category, report.text)
        loc = report.location
        ids = {c for _, h in hashes for c in group.by_hash.get(h, ())}
        ranked: list[tuple[int, OpenCase]] = []
        elsewhere = 0  # open cases of the same parties reported by someone else
        for case in sorted(
            (group.cases[c] for c in ids), key=lambda c: (c.received_at, c.case_id), reverse=True
        ):  # newest first; min() below keeps the first of the best rank
            rank = merge_rank(case.dispute_type, case.guessed_type, guess)
            if rank is None:
                continue
            # 并单 only within one sender's reports: merging into another integrator's case
            # would tell the sender that someone else reported these parties (an oracle)
            if case.integrator_id == integrator_id and (
                integrator_id is not None or case.source == report.source
            ):
                ranked.append((rank, case))
            else:
                elsewhere += 1
        target = min(ranked, key=lambda rc: rc[0])[1] if ranked else None
        report_id = new_id()
        if target is not None:
            target.repeat_count += 1
            target.merges += 1
            case_id = target.case_id
        else:
            case_id = fresh_case_id
            group.cases[case_id] = OpenCase(
                case_id=case_id,
                received_at=now,
                status=CaseStatus.received,
                source=report.source,
                integrator_id=integrator_id,
                dispute_type=None,
                guessed_type=guess,
                # the same parties in other senders' open cases still raise severity
                repeat_count=1 + elsewhere,
                new=True,
            )
            row: dict[str, Any] = {
                "case_id": case_id,
                "source": report.source,
                "source_ref": report.source_ref,
                "status": CaseStatus.received.value,
                "status_at": now,
                "status_reason": "",
                "dispute_type": None,
                "guessed_type": guess,
                "channel": None,
                "repeat_count": 1 + elsewhere,
                "received_at": now,
                "tier": None,
                "grid_code": loc.grid_code if loc else None,
                "organisation_id": None,
                "mediator_id": None,
                "co_channels": [],
                "integrator_id": integrator_id,
            }
            group.new_rows[case_id] = row
            tx.add_rows(IntakeCase, [row])
        for _, h in hashes:  # later reports of the group find this one's case by its parties
            known = group.by_hash.setdefault(h, [])
            if case_id not in known:
                known.append(case_id)
        reporter = report.reporter.model_dump() if report.reporter else None
        parties = [p.model_dump() for p in report.parties]
        location = {"address": loc.address, "lat": loc.lat, "lon": loc.lon} if loc else None
        tx.add_rows(
            IntakeReport,
            [
                {
                    "report_id": report_id,
                    "case_id": case_id,
                    "source": report.source,
                    "source_ref": report.source_ref,
                    "via": item.via,
                    "integrator_id": integrator_id,
                    "merged": target is not None,
                    "reported_at": report.reported_at,
                    "received_at": now,
                    "category": report.category,
                    "service_code": item.service_code,
                    "grid_code": loc.grid_code if loc else None,
                    # always read together: one encryption instead of four
                    "sealed_enc": self.cipher.seal(
                        {
                            "text": report.text,
                            "reporter": reporter,
                            "parties": parties or None,
                            "location": location,
                        }
                    ),
                    "text_enc": None,
                    "reporter_enc": None,
                    "parties_enc": None,
                    "location_enc": None,
                }
            ],
        )
        if hashes:
            tx.add_rows(
                PartyIndex,
                [
                    {
                        "case_id": case_id,
                        "report_id": report_id,
                        "kind": kind,
                        "hash": h,
                        "created_at": now,
                    }
                    for kind, h in hashes
                ],
            )
        party_hashes = [h for _, h in hashes]
        if target is not None:
            self._merge_events(tx, target, report, report_id, item.via, party_hashes)
        else:
            contact = {
                "reporter": reporter,
                "parties": parties,
                "address": loc.address if loc else None,
            }
            self._receive_events(
                tx, case_id, report, report_id, item.via, now, party_hashes, 1 + elsewhere, contact
            )
        return Receipt(
            case_id, report_id, report.source, report.source_ref, target is not None, False
        )

    def unseal(self, token: str | None) -> Any:
        """Decrypt a sealed column (None stays None)."""
        return None if token is None else self.cipher.unseal(token)["v"]

    def opened(self, row: IntakeReport) -> dict[str, Any]:
        """A stored report's text, reporter, parties (a list) and location, in clear."""
        if row.sealed_enc is not None:
            v = self.cipher.unseal(row.sealed_enc)
            return {
                "text": v.get("text") or "",
                "reporter": v.get("reporter"),
                "parties": v.get("parties") or [],
                "location": v.get("location"),
            }
        return {  # stored before the fields were sealed together
            "text": self.cipher.decrypt(row.text_enc) or "",
            "reporter": self.unseal(row.reporter_enc),
            "parties": self.unseal(row.parties_enc) or [],
            "location": self.unseal(row.location_enc),
        }

    def _sealed_location(self, report: CanonicalReport) -> str | None:
        loc = report.location
        if loc is None or loc.lat is None or loc.lon is None:
            return None
        return self.cipher.seal({"lat": loc.lat, "lon": loc.lon})

    def _receive_events(
        self,
        tx: Tx,
        case_id: str,
        report: CanonicalReport,
        report_id: str,
        via: str,
        now: Any,
        party_hashes: list[str],
        repeat_count: int,
        contact: dict[str, Any],
    ) -> None:
        loc = report.location
        refs = [party_ref(p) for p in report.parties]
        tx.transition(
            case_id,
            action="receive",
            from_status=None,
            to_status=CaseStatus.received,
            actor=ACTOR,
            reason=f"report received from {report.source} via {via}",
            at=now,
            details={
                "source": report.source,
                "source_ref": report.source_ref,
                "report_id": report_id,
                "via": via,
                "category": report.category,
                "grid_code": loc.grid_code if loc else None,
                # persons masked, organisations named: what the ledger shows as the parties
                "parties": [r.model_dump() for r in refs],
            },
            party_hashes=party_hashes,
            sealed_location=self._sealed_location(report),
        )
        tx.emit(
            self.topics.reports,
            "report.received",
            ReportReceived(
                case_id=case_id,
                source=report.source,
                source_ref=report.source_ref,
                reported_at=report.reported_at,
                received_at=now,
                text=event_text(report),
                category=report.category,
                grid_code=loc.grid_code if loc else None,
                parties=refs,
                repeat_count=repeat_count,
                sealed_contact=self.cipher.seal(contact),
            ),
            case_id,
        )

    def _merge_events(
        self,
        tx: Tx,
        case: OpenCase,
        report: CanonicalReport,
        report_id: str,
        via: str,
        party_hashes: list[str],
    ) -> None:
        tx.transition(
            case.case_id,
            action="merge",
            from_status=case.status,
            to_status=case.status,
            actor=ACTOR,
            reason=f"并单: report {report.source}/{report.source_ref} shares a party's "
            f"phone or ID number; reported {case.repeat_count} times",
            details={
                "source": report.source,
                "source_ref": report.source_ref,
                "report_id": report_id,
                "via": via,
                "repeat_count": case.repeat_count,
            },
            party_hashes=party_hashes,
        )
        tx.emit(
            self.topics.reports,
            "report.repeated",
            ReportRepeated(
                case_id=case.case_id,
                source=report.source,
                source_ref=report.source_ref,
                repeat_count=case.repeat_count,
                text=event_text(report),
            ),
            case.case_id,
        )

    # ---- status back to the sources ----------------------------------------------------

    async def trail_appended(self, env: Envelope, entry: TrailAppended) -> None:
        """Project the case's status and tell every source that reported it, in causal order.

        An entry that arrives before one it follows waits (parked) until that one was applied,
        so a source never hears `triaged` after `assigned`.
        """
        queued: list[int] = []

        async def work(tx: Tx, env: Envelope, entry: TrailAppended) -> None:
            case, view = await self._view(tx, entry.case_id)
            if case is None:
                return  # not a case that came in through this intake
            d = entry.details
            # only what changes is written
            if isinstance(d.get("dispute_type"), str):
                case.set("dispute_type", d["dispute_type"])
            if isinstance(d.get("channel"), str):
                case.set("channel", d["channel"])
            for name, value in scope_changes(d).items():
                case.set(name, value)
            reports = view.reports[case.case_id]
            reason: str | None = None
            if entry.actor == ACTOR and entry.action in ("receive", "merge"):
                # about one report, the one named in details
                targets = [
                    r
                    for r in reports
                    if r.source == d.get("source") and r.source_ref == d.get("source_ref")
                ]
            elif entry.from_status == entry.to_status:
                targets = []
            else:
                targets = reports
                # entries come in causal order; only those from before it existed need the clock
                if entry.seq > 0 or as_utc(entry.at) >= as_utc(case.values["status_at"]):
                    reason = redact_text(entry.reason)  # names, doors, numbers
                    case.set("status", entry.to_status)
                    case.set("status_at", entry.at)
                    case.set("status_reason", reason[:500])
            if tx.batch is None:  # in a batch: written with the batch's other cases at commit
                await _write_projections(tx.session, [case])
            if targets and reason is None:
                reason = redact_text(entry.reason)
            for r in targets:
                body = feedback_body(
                    r,
                    entry,
                    case.values["status"] if entry.action == "merge" else entry.to_status,
                    env.event_id,
                    reason or "",
                )
                tx.publish_raw(self.topics.feedback(r.source), r.source_ref, body)
                queued.append(1)
                if r.integrator_id and view.hooks.get(r.integrator_id):
                    hooks.append(1)
                    now = utcnow()
                    tx.add_rows(
                        WebhookDelivery,
                        [
                            {
                                "integrator_id": r.integrator_id,
                                "case_id": case.case_id,
                                "body": body,
                                "attempts": 0,
                                "next_attempt_at": now,
                                "delivered_at": None,
                                "last_status": None,
                                "created_at": now,
                            }
                        ],
                    )

        hooks: list[int] = []  # callbacks queued: only then is the webhook sender woken

        async def notify() -> None:
            self.delivery.wakeup.set()
            if hooks:
                self.webhooks_due.set()

        await self.feedback_gate.handle(env, entry, work)
        if queued:
            await self.delivery.after_commit(notify)

    @staticmethod
    async def _view(tx: Tx, case_id: str) -> tuple[CaseProjection | None, FeedbackView]:
        """A case's projection, and who sent its reports, read with one query; in a batch,
        those of all its cases at its first event, their changes written with one executemany
        per set of columns just before it commits (no ORM object, attribute event or flush per
        event; the feedback consumer adds no reports, so they cannot change within it)."""
        if tx.batch is None:
            view = await feedback_view(tx.session, [case_id])
            return view.cases.get(case_id), view
        memo = tx.batch.memo
        known: FeedbackView | None = memo.get("intake.feedback")
        if known is None:
            known = memo["intake.feedback"] = await feedback_view(
                tx.session, sorted(tx.batch.case_ids)
            )
            cases = known.cases
            tx.batch.before_commit(lambda session: _write_projections(session, cases.values()))
        if case_id not in tx.batch.case_ids and case_id not in known.cases:
            more = await feedback_view(tx.session, [case_id])  # none such today
            known.cases |= more.cases
            known.reports |= more.reports
            known.hooks |= more.hooks
        return known.cases.get(case_id), known


async def _write_projections(session: Any, cases: Iterable[CaseProjection]) -> None:
    conn = await session.connection()
    for stmt, rows in projection_updates(cases):
        await conn.execute(stmt, rows)


def feedback_body(
    report: ReportRef, entry: TrailAppended, status: str, event_id: str, reason: str
) -> bytes:
    """The status message a source receives, on its feedback topic and by webhook."""
    return json.dumps(
        {
            "source": report.source,
            "source_ref": report.source_ref,
            "case_id": report.case_id,
            "status": status,
            "status_note": STATUS_NOTES.get(status, status),
            "previous_status": entry.from_status,
            "action": entry.action,
            "at": as_utc(entry.at).isoformat(),
            "reason": reason,  # redact_text(entry.reason)
            "merged": report.merged,
            "event_id": event_id,
        },
        ensure_ascii=False,
    ).encode()
