"""The warning engine: raise and clear warnings as ledger entries arrive, and on a clock.

`after_entry` runs inside the ledger's transaction for every trail entry, so the counters, the
warnings and their outbox events commit with the projection or not at all. `scan` re-checks the
warnings that time alone can clear (windows sliding, deadlines passing) and raises soon-due ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from services.followup.case_rows import case_rows
from services.followup.domain import as_utc, parse_time, utc
from services.followup.ledger import CaseProjection
from services.followup.repository import LedgerCase
from services.followup.warnings import repository as wrepo
from services.followup.warnings.domain import (
    SETTLED,
    DueSoon,
    Thresholds,
    area_levels,
    employers,
    escalation_facts,
    is_open,
    local_day,
    rising,
    rising_tier,
    rising_windows,
    short_hash,
    soon_due,
    tier_above,
)
from services.followup.warnings.known import known
from services.followup.warnings.repository import (
    EmployerCase,
    PartyCase,
    WarningCaseState,
    WarningRow,
)
from shared import periodic
from shared.clock import Clock
from shared.contracts import CaseStatus as S
from shared.contracts import (
    TrailAppended,
    WarningCleared,
    WarningKind,
    WarningRaised,
    WarningStatus,
)
from shared.db import Delivery, Tx
from shared.events import new_id
from shared.topics import Topics

log = logging.getLogger("fengqiao.followup.warnings")
K = WarningKind
RISING_LEVELS = ("town", "village")
TIME_CLEARED = [K.repeat_party, K.rising_area, K.group_risk, K.soon_due]
NAMING = "followup.warnings.naming"  # a batch's memo: case id → active warnings naming it
AREAS = "followup.warnings.areas"  # a batch's memo: its areas' days and warnings were read


RAISE_TRIES = 3  # raised by another instance, then cleared by it, before this one could join


class WarningRaceLost(RuntimeError):
    """A warning's key kept changing hands between instances (the batch is tried again)."""


def _iso(at: datetime | None) -> str | None:
    return as_utc(at).isoformat() if at else None  # type: ignore[union-attr]


class WarningEngine:
    """Computes the warnings of DOMAIN.md §8 incrementally from the ledger's entries."""

    def __init__(self, topics: Topics, thresholds: Thresholds) -> None:
        self.topics, self.t = topics, thresholds

    # ---- raising and clearing ----------------------------------------------------------

    async def _raise(
        self,
        tx: Tx,
        kind: WarningKind,
        subject: str,
        *,
        at: datetime,
        case_ids: Sequence[str],
        facts: dict[str, Any],
        tier: str | None,
        area: str | None,
        channel: str | None = None,
        organisation_id: str | None = None,
    ) -> WarningRow:
        """Raise a warning about a subject, or bring the active one's cases and facts up to date."""
        s, k = tx.session, known(tx)
        key = f"{kind}:{subject}"
        for _ in range(RAISE_TRIES):
            w = await k.active(key)
            if w is not None:
                named = set(w.case_ids)
                new = [c for c in dict.fromkeys(case_ids) if c not in named]
                if new or facts != w.facts:
                    k.update(w, new, facts, at)  # written as the transaction commits
                    await self._link(tx, w, new, fresh=False)
                return w
            w = WarningRow(
                warning_id=new_id(),
                kind=kind,
                key=key,
                subject=subject,
                active_key=key,
                status=WarningStatus.open,
                tier=tier,
                area_code=area,
                channel=channel,
                organisation_id=organisation_id,
                case_ids=list(dict.fromkeys(case_ids)),
                facts=facts,
                raised_at=at,
                updated_at=at,
            )
            if await wrepo.insert_active(s, w):  # its id, for its links
                break
            # another instance raised it since this transaction looked: join that one
            k.forget(key)
        else:
            raise WarningRaceLost(key)
        k.raised(w)
        await self._link(tx, w, w.case_ids, fresh=True)
        tx.emit(
            self.topics.warnings,
            "warning.raised",
            WarningRaised(
                warning_id=w.warning_id,
                kind=kind,
                key=subject,
                tier=tier,
                area_code=area,
                case_ids=w.case_ids,
                facts=facts,
                raised_at=at,
            ),
            subject,
        )
        return w

    async def _link(self, tx: Tx, w: WarningRow, case_ids: Sequence[str], *, fresh: bool) -> None:
        """Link a warning to cases it names (a fresh warning has no links yet)."""
        assert w.id is not None
        naming = tx.batch.memo.get(NAMING) if tx.batch is not None else None
        k = known(tx)
        for case_id in dict.fromkeys(case_ids):
            if fresh:
                linked = False
            elif naming is not None and case_id in naming:
                # a case of the batch: its active warnings were read with the batch's first entry
                # and kept up to date since, and an active warning was active then (a cleared one
                # never comes back), so no read of the warning's links (thousands for a town).
                # Rising areas were not read (see _active_naming): a link that exists already is
                # left as it is when the batch writes its links (on conflict, nothing)
                linked = any(x.id == w.id for x in naming[case_id])
            else:
                # a case the warning named before and dropped from its newest ones is linked
                linked = await k.linked(w.id, case_id)
            if not linked:
                k.link(tx, w.id, case_id)
                if naming is not None and case_id in naming:
                    naming[case_id].append(w)

    async def _active_naming(self, tx: Tx, case_id: str) -> list[WarningRow]:
        """Active warnings naming a case; in a batch, read once for every case of the batch and
        kept up to date as the batch links and clears warnings.

        In a batch, rising areas are left out: no entry of a case ends one (time alone does,
        the scanner's work), and a town's names hundreds of cases, its row read and its cases'
        JSON decoded for every batch with a case of the town."""
        if tx.batch is None or case_id not in tx.batch.case_ids:
            return await wrepo.active_naming(tx.session, case_id)
        naming: dict[str, list[WarningRow]] | None = tx.batch.memo.get(NAMING)
        if naming is None:
            # a case new to the ledger has no warning yet (the engine links a case only in a
            # transaction of its own entries): no query when the batch's cases are all new,
            # as at a steady rate a report's first entry is its batch
            heads = case_rows(tx)
            stored = [c for c in sorted(tx.batch.case_ids) if not heads.new_to_ledger(c)]
            naming = {c: [] for c in tx.batch.case_ids}
            if stored:
                naming |= await wrepo.active_naming_all(tx.session, stored, but=(K.rising_area,))
            tx.batch.memo[NAMING] = naming
        rows = {id(w): w for w in naming.setdefault(case_id, []) if w.active_key is not None}
        return sorted(rows.values(), key=lambda w: w.id or 0)

    async def _clear(self, tx: Tx, w: WarningRow, reason: str, at: datetime) -> None:
        """The condition no longer holds: clear the warning and tell whoever listens."""
        s = tx.session
        if w.active_key is not None:
            known(tx).cleared(w.active_key)
        w.status, w.active_key = WarningStatus.cleared, None
        w.cleared_at, w.clear_reason, w.updated_at = at, reason, at
        s.add(w)  # its case links stay: GET /v1/warnings?case_id= finds cleared warnings too
        tx.emit(
            self.topics.warnings,
            "warning.cleared",
            WarningCleared(
                warning_id=w.warning_id,
                kind=WarningKind(w.kind),
                key=w.subject,
                case_ids=w.case_ids,
                reason=reason,
                cleared_at=at,
            ),
            w.subject,
        )

    # ---- per ledger entry --------------------------------------------------------------

    async def after_entry(
        self, tx: Tx, ev: TrailAppended, before: CaseProjection | None, after: CaseProjection
    ) -> None:
        """Raise what now holds, clear what no longer does.

        In a partition batch, with the session's autoflush off: every read goes through
        `known` (read once, kept up to date), so the batch's changes are flushed at its commit
        (and when a new warning needs its id), not before each query.
        """
        if tx.batch is None:
            await self._after_entry(tx, ev, before, after)
            return
        with tx.session.no_autoflush:
            if NAMING not in tx.batch.memo:  # before any link: the batch keeps it up to date
                # nothing pending can change what it reads (no warning or link is written
                # before it in the batch): the other hooks' rows are flushed once, at commit
                await self._active_naming(tx, after.case_id)
            await self._after_entry(tx, ev, before, after)

    async def _after_entry(
        self, tx: Tx, ev: TrailAppended, before: CaseProjection | None, after: CaseProjection
    ) -> None:
        s, k = tx.session, known(tx)
        at = utc(ev.at)
        case_id = after.case_id
        # a batch reads its cases' rows at once; a case new to the ledger has none (the engine
        # writes one only with an entry of the case, in the ledger's transaction)
        st = await tx.get(WarningCaseState, case_id) if before is not None else None
        if st is None:
            st = WarningCaseState(case_id=case_id, status=after.status)
            s.add(st)  # a row read by tx.get is in the session already
        was_open = st.open
        if st.received_at is None:
            st.received_at = after.received_at or after.created_at or at
        old_due = before.sign_for_due if before else None
        if after.sign_for_due is not None and (
            st.sign_for_from is None or as_utc(after.sign_for_due) != as_utc(old_due)
        ):
            st.sign_for_from = at
        # only what changed is set: an assignment to a table model is a Pydantic and an
        # SQLAlchemy call each, and most entries change one or two of these
        for name, value in (
            ("sign_for_due", after.sign_for_due),
            ("mediation_due", after.mediation_due),
            ("status", after.status),
            ("open", is_open(after.status)),
        ):
            if getattr(st, name) != value:
                setattr(st, name, value)
        received = utc(st.received_at)

        new_hashes = await self._record_parties(tx, case_id, ev.party_hashes, received)
        was = before.status if before else None
        if after.status != was and after.status in SETTLED:
            for row in await k.party_rows_of(case_id):
                row.settled_at, row.settled_tier = at, after.tier
                s.add(row)
        merged = after.status == S.merged and was != S.merged
        if merged:
            for row in await k.party_rows_of(case_id):
                row.counted = False
                s.add(row)
        if st.open != was_open and st.labour_counted:  # ended, or reopened
            for erow in await k.employer_rows_of(case_id):
                k.set_employer_open(erow, st.open)

        if after.tier and st.open and (new_hashes or not st.party_checked):
            st.party_checked = True
            await self._check_parties(tx, after, at)
        if not st.area_counted and after.grid_code:
            st.area_counted = True
            await self._count_area(tx, after, received, at)
        if after.dispute_type == "labour" and not st.labour_counted and after.parties and st.open:
            st.labour_counted = True
            await self._count_employer(tx, after, received, at)
        if st.open and len(after.parties) >= self.t.group_parties:
            await self._raise(
                tx,
                K.group_risk,
                case_id,
                at=at,
                case_ids=[case_id],
                facts={"basis": "parties", "parties": len(after.parties)},
                tier="county",
                area=after.grid_code,
                channel=after.channel,
                organisation_id=after.organisation_id,
            )
        if st.open and (why := escalation_facts(_facts(before), vars(after), ev.action)):
            w = await k.active(f"{K.escalating}:{case_id}")
            history = [*(w.facts.get("history", []) if w else []), {**why, "at": at.isoformat()}]
            await self._raise(
                tx,
                K.escalating,
                case_id,
                at=at,
                case_ids=[case_id],
                facts={**why, "history": history, "severity": after.severity},
                tier=tier_above(after.tier),
                area=after.grid_code,
                channel=after.channel,
                organisation_id=after.organisation_id,
            )
        await self._check_due(tx, st, after, at)
        for w in await self._active_naming(tx, case_id):
            # what one case's entry can end: a rising area counts new cases per day (time alone
            # ends it, the scanner's work); a repeat party loses a case only to a merge; claims
            # against an employer only when a case ends or reopens
            if w.kind == K.rising_area:
                continue
            if w.kind == K.repeat_party and not merged:
                continue
            employer = w.kind == K.group_risk and w.facts.get("basis") == "employer"
            if employer and st.open == was_open:
                continue
            await self._recheck(tx, w, at)

    async def _record_parties(
        self, tx: Tx, case_id: str, hashes: Sequence[str], received: datetime
    ) -> list[str]:
        k = known(tx)
        have = {r.hash for r in await k.party_rows_of(case_id)} if hashes else set()
        out = []
        for h in dict.fromkeys(hashes):
            if len(h) > 64 or h in have:
                continue
            k.add_party(PartyCase(hash=h, case_id=case_id, received_at=received))
            out.append(h)
        return out

    async def _check_parties(self, tx: Tx, case: CaseProjection, at: datetime) -> None:
        """repeat_party and repeat_after_agreement for the parties of a case."""
        k = known(tx)
        mine = [r.hash for r in await k.party_rows_of(case.case_id) if r.counted]
        since = at - timedelta(days=self.t.repeat_party_days)
        rows = await k.party_cases(mine, since, at - timedelta(days=self.t.after_agreement_days))
        covered: set[frozenset[str]] = set()
        for h in mine:
            recent = [r for r in rows if r.hash == h and utc(r.received_at) >= since]
            cases = list(dict.fromkeys(r.case_id for r in recent))
            if len(cases) < self.t.repeat_party_cases or frozenset(cases) in covered:
                continue
            covered.add(frozenset(cases))
            await self._raise(
                tx,
                K.repeat_party,
                h,
                at=at,
                case_ids=cases,
                facts={
                    "party": h[:12],
                    "cases_in_window": len(cases),
                    "window_days": self.t.repeat_party_days,
                    "threshold": self.t.repeat_party_cases,
                    "newest_case": case.case_id,
                },
                tier=case.tier,
                area=case.grid_code,
            )
        window = timedelta(days=self.t.after_agreement_days)
        for r in rows:
            if r.case_id == case.case_id or r.settled_at is None:
                continue
            settled = utc(r.settled_at)
            # settled before this entry in ledger order; the clocks of two services may differ,
            # so only the window's far end is compared
            if at - settled > window:
                continue
            first = await case_rows(tx).get(tx, r.case_id)  # as this transaction knows it
            await self._raise(
                tx,
                K.repeat_after_agreement,
                f"{case.case_id}:{r.case_id}",
                at=at,
                case_ids=[r.case_id, case.case_id],
                facts={
                    "party": r.hash[:12],
                    "settled_case": r.case_id,
                    "settled_at": settled.isoformat(),
                    "settled_tier": r.settled_tier,
                    "new_case": case.case_id,
                    "window_days": self.t.after_agreement_days,
                },
                tier=r.settled_tier,
                area=first.projection.grid_code if first else case.grid_code,
            )

    async def _count_area(
        self, tx: Tx, case: CaseProjection, received: datetime, at: datetime
    ) -> None:
        k = known(tx)
        await self._read_batch_areas(tx)
        day = local_day(received)
        levels = area_levels(case.grid_code)
        for level in RISING_LEVELS:
            area = levels.get(level)
            if area is None:
                continue
            k.count_case(area, day)  # the sums read later count it
            k.add_area_case(tx, area, case.case_id, day)
            await self._check_area(tx, area, level, local_day(at), at, case.case_id)

    async def _read_batch_areas(self, tx: Tx) -> None:
        """Once per batch: the day sums and active rising warnings of every area the batch's
        entries place a case in (two queries, not two per area)."""
        if tx.batch is None or AREAS in tx.batch.memo:
            return
        tx.batch.memo[AREAS] = True
        areas: set[str] = set()
        days = []
        for env in tx.batch.envelopes:
            details = env.payload.get("details") if env.event_type == "trail.appended" else None
            grid = details.get("grid_code") if isinstance(details, dict) else None
            if not isinstance(grid, str) or not grid:
                continue
            levels = area_levels(grid)
            areas.update(a for level in RISING_LEVELS if (a := levels.get(level)) is not None)
            if (at := parse_time(env.payload.get("at"))) is not None:
                days.append(local_day(at))
        if areas and days:
            first = rising_windows(min(days), self.t)[1]
            keys = [f"{K.rising_area}:{a}" for a in sorted(areas)]
            await known(tx).read_areas(sorted(areas), first, max(days), keys)

    async def _area_state(self, tx: Tx, area: str, day: Any) -> tuple[Any, Any]:
        recent_from, base_from, base_to = rising_windows(day, self.t)
        recent = await self._area_count(tx, area, recent_from, day)
        baseline = await self._area_count(tx, area, base_from, base_to)
        return rising(recent, baseline, self.t), recent_from

    async def _area_count(self, tx: Tx, area: str, first: Any, last: Any) -> int:
        """New cases of an area over days; a batch reads an area's days once and counts its
        own cases on the same rows (many new cases of one town in one batch)."""
        return await known(tx).area_count(area, first, last)

    async def _check_area(
        self, tx: Tx, area: str, level: str, day: Any, at: datetime, case_id: str
    ) -> None:
        state, recent_from = await self._area_state(tx, area, day)
        if not state.holds:
            return
        # raised: the area's recent cases; already open: the new case joins them
        k = known(tx)
        active = await k.active(f"{K.rising_area}:{area}")
        await self._raise(
            tx,
            K.rising_area,
            area,
            at=at,
            case_ids=[case_id] if active is not None else await k.area_cases(area, recent_from),
            facts={
                "level": level,
                "area": area,
                "recent_cases": state.recent,
                "window_days": self.t.rising_days,
                "baseline_weekly_mean": state.baseline_weekly_mean,
                "factor": self.t.rising_factor,
            },
            tier=rising_tier(level),
            area=area,
        )

    async def _count_employer(
        self, tx: Tx, case: CaseProjection, received: datetime, at: datetime
    ) -> None:
        k = known(tx)
        for name in employers(case.parties):
            key = short_hash(name)
            k.add_employer(
                EmployerCase(
                    employer_key=key,
                    employer=name[:200],
                    case_id=case.case_id,
                    received_at=received,
                )
            )
            await self._check_employer(tx, key, name, at, case)

    async def _check_employer(
        self, tx: Tx, key: str, name: str, at: datetime, case: CaseProjection | None
    ) -> None:
        rows = await known(tx).open_employer_cases(key, at - timedelta(days=self.t.group_days))
        if len(rows) < self.t.group_open_labour:
            return
        await self._raise(
            tx,
            K.group_risk,
            key,
            at=at,
            case_ids=[r.case_id for r in rows],
            facts={
                "basis": "employer",
                "employer": name,
                "open_labour_cases": len(rows),
                "window_days": self.t.group_days,
                "threshold": self.t.group_open_labour,
            },
            tier="county",
            area=case.grid_code if case else None,
        )

    def _dues(self, st: WarningCaseState, at: datetime) -> list[DueSoon]:
        return soon_due(
            st.status,
            as_utc(st.sign_for_from),
            as_utc(st.sign_for_due),
            as_utc(st.mediation_due),
            at,
            self.t,
        )

    async def _check_due(
        self,
        tx: Tx,
        st: WarningCaseState,
        case: CaseProjection,
        at: datetime,
        dues: list[DueSoon] | None = None,
    ) -> None:
        for due in self._dues(st, at) if dues is None else dues:
            await self._raise(
                tx,
                K.soon_due,
                f"{case.case_id}:{due.deadline}",
                at=at,
                case_ids=[case.case_id],
                facts={
                    "deadline": due.deadline,
                    "due_at": due.due_at.isoformat(),
                    "hours_left": round(due.remaining_s / 3600, 1),
                },
                tier=tier_above(case.tier),
                area=case.grid_code,
                channel=case.channel,
                organisation_id=case.organisation_id,
            )

    # ---- does an active warning still hold? --------------------------------------------

    async def _recheck(self, tx: Tx, w: WarningRow, now: datetime) -> None:
        """Clear a warning whose condition no longer holds at `now`.

        Never judged at a time before it was raised: an entry the ledger applies late (written
        before the scan that raised the warning) is judged at the warning's time.
        """
        now = max(now, as_utc(w.raised_at) or now)
        reason = await self._no_longer(tx, w, now)
        if reason is not None:
            await self._clear(tx, w, reason, now)

    async def _no_longer(self, tx: Tx, w: WarningRow, now: datetime) -> str | None:
        k = known(tx)
        if w.kind == K.repeat_party:
            since = now - timedelta(days=self.t.repeat_party_days)
            rows = await k.party_cases(
                [w.subject], since, now - timedelta(days=self.t.after_agreement_days)
            )
            n = len({r.case_id for r in rows if utc(r.received_at) >= since})
            if n < self.t.repeat_party_cases:
                return f"{n} cases of this party within {self.t.repeat_party_days} days"
            return None
        if w.kind == K.rising_area:
            state, _ = await self._area_state(tx, w.subject, local_day(now))
            if not state.holds:
                return (
                    f"{state.recent} new cases in {self.t.rising_days} days against a weekly "
                    f"mean of {state.baseline_weekly_mean}"
                )
            return None
        if w.kind == K.group_risk and w.facts.get("basis") == "employer":
            open_rows = await k.open_employer_cases(
                w.subject, now - timedelta(days=self.t.group_days)
            )
            if len(open_rows) < self.t.group_open_labour:
                return f"{len(open_rows)} open labour cases against the employer"
            return None
        case_id = w.case_ids[-1]
        st = await tx.get(WarningCaseState, case_id)
        if st is None or not st.open:
            return f"case {case_id} is {st.status if st else 'unknown'}"
        if w.kind == K.soon_due:
            deadline = w.facts.get("deadline")
            if not any(d.deadline == deadline for d in self._dues(st, now)):
                return f"the {deadline} deadline is no longer close (met, moved or passed)"
        return None

    # ---- on a clock ----------------------------------------------------------------------

    async def scan(self, delivery: Delivery, now: datetime) -> int:
        """Re-check time-bound warnings at `now` and raise soon-due ones; returns changes.

        A fixed number of queries whatever the number of open cases, plus the writes of what
        changes: the states of the cases the active warnings name are read at once; a case
        whose deadline is newly close is read with the others, and knows it has no active
        warning yet; a standing warning for the same due time is left as it is, so a scan
        rewrites nothing for the cases it already warned about.
        """
        changes = 0
        async with delivery.transaction() as tx:
            s, k = tx.session, known(tx)
            active = await wrepo.all_active(s, [str(kind) for kind in TIME_CLEARED])
            states = await wrepo.rows_of(
                s, WarningCaseState, [w.case_ids[-1] for w in active if w.case_ids]
            )
            for w in active:
                before = w.status
                await self._recheck(tx, w, now)
                changes += int(w.status != before)
            standing = {
                w.active_key: w.facts.get("due_at")
                for w in active
                if w.kind == K.soon_due and w.active_key is not None
            }
            newly: list[tuple[WarningCaseState, list[DueSoon]]] = []
            for st in await wrepo.deadline_candidates(
                s,
                now,
                now + timedelta(days=2),
                now + timedelta(days=self.t.soon_due_mediation_days),
            ):
                dues = []
                for d in self._dues(st, now):
                    key = f"{K.soon_due}:{st.case_id}:{d.deadline}"
                    if key not in standing:
                        k.cleared(key)  # none active: all of them were read above
                    elif standing[key] == d.due_at.isoformat():
                        continue
                    dues.append(d)
                if dues:
                    newly.append((st, dues))
            cases = {
                c.case_id: c
                for c in await wrepo.rows_of(s, LedgerCase, [st.case_id for st, _ in newly])
            }
            for st, dues in newly:
                case = cases.get(st.case_id)
                if case is None:
                    continue
                n = len(tx.emitted)
                await self._check_due(tx, st, case.projection(), now, dues)
                changes += len(tx.emitted) - n
            del states
        return changes


def _facts(p: CaseProjection | None) -> dict[str, Any] | None:
    # the projection's own fields, read only (asdict would deep-copy the parties per entry)
    return vars(p) if p is not None else None


async def run_scanner(
    engine: WarningEngine, delivery: Delivery, clock: Clock, interval_s: float
) -> None:
    """Scan forever at an interval (the lifespan's background task)."""
    await periodic.every(
        interval_s, lambda: engine.scan(delivery, clock.now()), log, "warning scan failed"
    )
