"""What the warning engine reads in one transaction, read once and kept up to date as it writes.

In a partition batch the engine runs with the session's autoflush off: a query no longer
flushes the projection and every row the batch changed before it (one flush per entry, and one
UPDATE of each case per entry instead of one per batch). So no read may depend on the session's
pending changes being in the database. `Known` holds every row the transaction read or added;
a read from the database is merged with the rows added since (by identity: a row already
flushed comes back as the same object), and conditions on columns the transaction may have
changed (a party row settled, an employer's case ended, a warning cleared) are checked on the
objects, not in SQL. Rows are read once per batch where the keys are known in advance (the
batch's cases), once per key otherwise (a party hash, an area's days, a warning's key).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, event, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select

from services.followup.domain import utc
from services.followup.warnings import repository as wrepo
from services.followup.warnings.domain import employers, short_hash
from services.followup.warnings.repository import (
    AreaCase,
    AreaDay,
    EmployerCase,
    PartyCase,
    WarningCaseLink,
    WarningRow,
)
from shared.db import Tx

MEMO = "followup.warnings.known"
AREA_DAYS = AreaDay.__table__  # type: ignore[attr-defined]
WARNINGS = WarningRow.__table__  # type: ignore[attr-defined]
MAX_CASE_IDS = 200  # the cases a warning names at most: its newest
PAD = timedelta(days=70)  # an area's days read around a window: a batch's later windows too
_SINGLE: weakref.WeakKeyDictionary[Tx, Known] = weakref.WeakKeyDictionary()
LINKS = WarningCaseLink.__table__  # type: ignore[attr-defined]


def _add_days_stmt(insert: Any) -> Any:
    stmt = insert(AREA_DAYS)
    return stmt.on_conflict_do_update(
        index_elements=[AREA_DAYS.c.area, AREA_DAYS.c.day],
        set_={"cases": AREA_DAYS.c.cases + stmt.excluded.cases},
    )


IDS: Any = bindparam("ids", expanding=True)
# the batch's reads, built once (their keys are the execution's parameters): a statement built
# per batch costs its construction and its cache key each time, as much as a small batch's query
PARTIES_OF_CASES = select(PartyCase).where(col(PartyCase.case_id).in_(IDS))
# a party's cases that can still count: received within the repeat window, or settled within
# the after-agreement one (a frequent party's older cases are never read back as rows)
PARTIES_OF_HASHES = select(PartyCase).where(
    col(PartyCase.hash).in_(IDS),
    or_(
        col(PartyCase.received_at) >= bindparam("received_since"),
        col(PartyCase.settled_at) >= bindparam("settled_since"),
    ),
)
DAYS_OF_AREAS = select(col(AreaDay.area), col(AreaDay.day), col(AreaDay.cases)).where(
    col(AreaDay.area).in_(IDS),
    col(AreaDay.day) >= bindparam("lo"),
    col(AreaDay.day) <= bindparam("hi"),
)
ACTIVE_OF_KEYS = select(WarningRow).where(col(WarningRow.active_key).in_(IDS))

# the commit-time writes, built once (the values are the execution's parameters): a statement
# built per batch costs its cache key each time, more than a small batch's rows
ADD_DAYS = {"postgresql": _add_days_stmt(pg_insert), "sqlite": _add_days_stmt(sqlite_insert)}
ADD_LINKS = {
    "postgresql": pg_insert(LINKS).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(LINKS).on_conflict_do_nothing(),
}
UPDATE_WARNINGS = (
    update(WARNINGS)
    .where(WARNINGS.c.id == bindparam("w_id"))
    .values(
        case_ids=bindparam("w_cases"),
        facts=bindparam("w_facts"),
        updated_at=bindparam("w_at"),
    )
)


def known(tx: Tx) -> Known:
    """The transaction's Known (one per batch, or per single transaction)."""
    if tx.batch is not None:
        k: Known | None = tx.batch.memo.get(MEMO)
        if k is None:
            k = tx.batch.memo[MEMO] = Known(tx, sorted(tx.batch.case_ids))
        return k
    k = _SINGLE.get(tx)
    if k is None:
        k = _SINGLE[tx] = Known(tx, [])
    return k


def _write_at_commit(k: Known) -> None:
    # registered when the transaction's Known is made (its first entry): the same place among
    # the other hooks' commit-time writes in every transaction, so their locks come in one order
    event.listen(k.tx.session.sync_session, "before_commit", k.write, once=True)


def _party_hashes(envelopes: Sequence[Any]) -> set[str]:
    """The party hashes the trail entries of a batch carry."""
    out: set[str] = set()
    for env in envelopes:
        hashes = env.payload.get("party_hashes") if env.event_type == "trail.appended" else None
        if isinstance(hashes, list):
            out.update(h for h in hashes if isinstance(h, str) and len(h) <= 64)
    return out


def _employer_keys(envelopes: Sequence[Any]) -> set[str]:
    """The employers (keys) the trail entries of a batch name among their parties."""
    out: set[str] = set()
    for env in envelopes:
        details = env.payload.get("details") if env.event_type == "trail.appended" else None
        parties = details.get("parties") if isinstance(details, dict) else None
        if isinstance(parties, list):
            out.update(
                short_hash(name) for name in employers([p for p in parties if isinstance(p, dict)])
            )
    return out


def _merged(rows: Sequence[Any], added: Sequence[Any], keep: Any) -> list[Any]:
    """Rows read from the database and rows added since that match (each object once)."""
    out = list(rows)
    seen = {id(r) for r in out}
    out += [a for a in added if id(a) not in seen and keep(a)]
    return out


@dataclass(slots=True)
class Claim:
    """A labour case against an employer, as `open_employer_cases` reads it."""

    case_id: str
    received_at: datetime  # UTC
    open: bool


class Known:
    """The warning engine's reads of one transaction (see the module's docstring)."""

    def __init__(self, tx: Tx, case_ids: Sequence[str]) -> None:
        self.tx, self.case_ids = tx, list(case_ids)
        self.active_by_key: dict[str, WarningRow | None] = {}
        self.links: dict[int, set[str]] = {}  # warning id → the cases it is linked to
        self.parties_added: list[PartyCase] = []
        # the rows added, by case and by hash (in the order added): no scan of every row added
        self.added_of_case: dict[str, list[PartyCase]] = {}
        self.added_of_hash: dict[str, list[tuple[int, PartyCase]]] = {}
        self.parties_of_cases: dict[str, list[PartyCase]] | None = None
        # the same rows by hash: the ones this batch may settle or merge before it flushes
        self.own_by_hash: dict[str, list[PartyCase]] = {}
        self.parties_by_hash: dict[str, list[PartyCase]] = {}
        # hash → (received since, settled since) its rows in parties_by_hash were read from
        self.parties_since: dict[str, tuple[datetime, datetime]] = {}
        self.days: dict[str, dict[date, int]] = {}  # area → day → new cases stored
        self.days_read: dict[str, tuple[date, date]] = {}  # area → the range read
        self.days_added: dict[str, dict[date, int]] = {}  # area → day → counted here
        self.employers_added: list[EmployerCase] = []
        # employer key → (received since, the stored rows since then): read once per key
        self.employer_rows: dict[str, tuple[datetime, dict[str, Claim]]] = {}
        self.employer_open: dict[tuple[str, str], bool] = {}  # (key, case id): ended/reopened
        self.batch_employers_read = False
        self.area_cases_added: list[tuple[str, str, date]] = []  # (area, case id, day)
        self.batch_hashes_read = False
        # warning id → (the row, the cases it gained here): its cases, facts and time written
        # as the transaction commits, every such row locked in id order (see `update`)
        self.updated: dict[int, tuple[WarningRow, list[str]]] = {}
        self.new_links: list[tuple[int, str]] = []  # (warning id, case id), a batch's
        _write_at_commit(self)

    @property
    def s(self) -> Any:
        return self.tx.session

    # ---- warnings by key, and their links ----------------------------------------------

    async def active(self, key: str) -> WarningRow | None:
        """The active warning with this key (raised or cleared earlier in the batch too)."""
        if key in self.active_by_key:
            return self.active_by_key[key]
        w = await wrepo.active(self.s, key)
        if w is not None and w.active_key != key:  # cleared in this transaction
            w = None
        self.active_by_key[key] = w
        return w

    def raised(self, w: WarningRow) -> None:
        assert w.active_key is not None and w.id is not None
        self.active_by_key[w.active_key] = w
        self.links[w.id] = set()  # a new warning: linked to nothing yet

    def update(self, w: WarningRow, new: Sequence[str], facts: dict[str, Any], at: Any) -> None:
        """An active warning gains cases (a long-lived one names its newest) and new facts.

        Set on the row as its stored values, so no flush in the batch writes it: a flush comes
        when the batch's own work asks (a query, a new warning's id), and two instances updating
        the same warnings (a town's, a party's) in the order their batches meet them deadlock.
        At commit every updated warning is locked in id order, re-read, and gains its cases on
        top of what another instance gave it meanwhile."""
        assert w.id is not None
        set_committed_value(w, "case_ids", [*w.case_ids, *new][-MAX_CASE_IDS:])
        set_committed_value(w, "facts", facts)
        set_committed_value(w, "updated_at", at)
        self.updated.setdefault(w.id, (w, []))[1].extend(new)

    def write(self, sync_session: Any) -> None:
        """Write what the transaction counted and updated (before_commit, on the session's
        connection, in the async session's greenlet): area days, then warnings, each in key
        order, then the batch's new links."""
        conn = sync_session.connection()
        if self.days_added:
            self._add_days(conn)
        if self.updated:
            self._update_warnings(conn)
        if self.new_links:
            rows = [{"warning_id": w, "case_id": c} for w, c in sorted(set(self.new_links))]
            conn.execute(ADD_LINKS[conn.dialect.name], rows)

    def _update_warnings(self, conn: Any) -> None:
        t, ids = WARNINGS, sorted(self.updated)
        stored: dict[int, list[str]] = {}
        if conn.dialect.name == "postgresql":
            lock = (
                select(t.c.id, t.c.case_ids)
                .where(t.c.id.in_(ids))
                .order_by(t.c.id)
                .with_for_update()
            )
            stored = {i: c for i, c in conn.execute(lock).all()}
        rows = []
        for i in ids:
            w, gained = self.updated[i]
            cases = list(dict.fromkeys([*stored.get(i, w.case_ids), *gained]))[-MAX_CASE_IDS:]
            rows.append({"w_id": i, "w_cases": cases, "w_facts": w.facts, "w_at": w.updated_at})
        conn.execute(UPDATE_WARNINGS, rows)

    def forget(self, key: str) -> None:
        """Read the active warning of a key again (another instance raised it meanwhile)."""
        self.active_by_key.pop(key, None)

    def cleared(self, key: str) -> None:
        self.active_by_key[key] = None

    async def linked(self, warning_id: int, case_id: str) -> bool:
        """Whether a warning is linked to a case (its links read once per transaction)."""
        cases = self.links.get(warning_id)
        if cases is None:
            stmt = select(WarningCaseLink.case_id).where(WarningCaseLink.warning_id == warning_id)
            cases = self.links[warning_id] = set((await self.s.exec(stmt)).all())
        return case_id in cases

    def link(self, tx: Tx, warning_id: int, case_id: str) -> None:
        """Link a warning to a case (a new warning's links: no read needed).

        In a batch the link is a plain row written as the batch commits (nothing in the batch
        reads links from the database after its first read of them: `linked` and the engine's
        naming memo are kept up to date here), in key order, and kept when another instance
        linked the same case to the same warning since this batch read them."""
        if tx.batch is not None:
            self.new_links.append((warning_id, case_id))
        else:
            self.s.add(WarningCaseLink(warning_id=warning_id, case_id=case_id))
        # kept up to date once read: a warning's links not read yet are read whole by `linked`
        if (cases := self.links.get(warning_id)) is not None:
            cases.add(case_id)

    # ---- parties -------------------------------------------------------------------------

    async def party_rows_of(self, case_id: str) -> list[PartyCase]:
        """The party rows of one case (the batch's cases' rows read at once)."""
        if case_id in self.case_ids:
            if self.parties_of_cases is None:
                self.parties_of_cases = {c: [] for c in self.case_ids}
                for i in range(0, len(self.case_ids), 500):
                    chunk = self.case_ids[i : i + 500]
                    got = await self.s.exec(PARTIES_OF_CASES, params={"ids": chunk})
                    for r in got.all():
                        self.parties_of_cases[r.case_id].append(r)
                        self.own_by_hash.setdefault(r.hash, []).append(r)
            rows: Sequence[PartyCase] = self.parties_of_cases[case_id]
        else:
            rows = await wrepo.party_rows_of(self.s, case_id)
        return _merged(rows, self.added_of_case.get(case_id, []), lambda a: True)

    def add_party(self, row: PartyCase) -> None:
        self.s.add(row)
        self.added_of_case.setdefault(row.case_id, []).append(row)
        self.added_of_hash.setdefault(row.hash, []).append((len(self.parties_added), row))
        self.parties_added.append(row)

    async def party_cases(
        self, hashes: Sequence[str], received_since: datetime, settled_since: datetime
    ) -> list[PartyCase]:
        """The counted cases of some party hashes received since `received_since` or settled
        since `settled_since` (at least those: rows read for earlier bounds are kept), oldest
        first, each hash read once per transaction unless asked for older rows."""
        since = (utc(received_since), utc(settled_since))
        wanted = list(dict.fromkeys(hashes))
        missing = [h for h in wanted if not self._parties_cover(h, since)]
        if missing and not self.batch_hashes_read and self.tx.batch is not None:
            # the first read of a batch reads every party the batch's entries name, and those
            # its cases had: one query per batch, not one per case
            self.batch_hashes_read = True
            more = _party_hashes(self.tx.batch.envelopes)
            for rows in (self.parties_of_cases or {}).values():
                more.update(r.hash for r in rows)
            missing = sorted({*missing, *(h for h in more if not self._parties_cover(h, since))})
        # a hash read before with later bounds is read again, from the earliest of all
        r_since, s_since = since
        for had in filter(None, map(self.parties_since.get, missing)):
            r_since, s_since = min(r_since, had[0]), min(s_since, had[1])
        for i in range(0, len(missing), 500):
            chunk = missing[i : i + 500]
            for h in chunk:
                self.parties_by_hash[h] = []
                self.parties_since[h] = (r_since, s_since)
            params = {"ids": chunk, "received_since": r_since, "settled_since": s_since}
            for r in (await self.s.exec(PARTIES_OF_HASHES, params=params)).all():
                self.parties_by_hash[r.hash].append(r)
        rows = [r for h in wanted for r in self.parties_by_hash[h]]
        # the batch's own cases' rows as they are now: one settled here is not settled in the
        # database yet (no flush before a batch's reads), so the bounds above may leave it out
        own = [r for h in wanted for r in self.own_by_hash.get(h, ())]
        want = set(wanted)
        added = sorted((a for h in want for a in self.added_of_hash.get(h, ())), key=lambda a: a[0])
        extra = [*own, *(r for _, r in added)]
        out = [r for r in _merged(rows, extra, lambda a: True) if r.counted]
        return sorted(out, key=lambda r: utc(r.received_at))

    def _parties_cover(self, h: str, since: tuple[datetime, datetime]) -> bool:
        """Whether the rows of hash `h` in hand were read from bounds no later than `since`."""
        had = self.parties_since.get(h)
        return had is not None and had[0] <= since[0] and had[1] <= since[1]

    # ---- an area's new cases per day -------------------------------------------------------

    def count_case(self, area: str, day: date) -> None:
        """One more new case in an area's day: added to the stored count as the transaction
        commits (every day row of the transaction in key order: two instances counting the same
        towns wait for each other, never deadlock, and neither overwrites the other's count)."""
        added = self.days_added.setdefault(area, {})
        added[day] = added.get(day, 0) + 1

    def _add_days(self, conn: Any) -> None:
        rows = [
            {"area": area, "day": day, "cases": n}
            for area, days in sorted(self.days_added.items())
            for day, n in sorted(days.items())
        ]
        conn.execute(ADD_DAYS[conn.dialect.name], rows)

    async def area_count(self, area: str, first: date, last: date) -> int:
        """New cases of an area over a range of days (its rows read once per batch and range),
        the transaction's own counted."""
        stored = self.days.setdefault(area, {})
        lo, hi = self.days_read.get(area, (first, last))
        if not (lo <= first and last <= hi) or area not in self.days_read:
            lo, hi = min(lo, first) - PAD, max(hi, last) + PAD
            stmt = select(col(AreaDay.day), col(AreaDay.cases)).where(
                AreaDay.area == area, col(AreaDay.day) >= lo, col(AreaDay.day) <= hi
            )
            for day, n in (await self.s.exec(stmt)).all():
                stored[day] = n
            self.days_read[area] = (lo, hi)
        added = self.days_added.get(area, {})
        return sum(n for d, n in stored.items() if first <= d <= last) + sum(
            n for d, n in added.items() if first <= d <= last
        )

    def add_area_case(self, tx: Tx, area: str, case_id: str, day: date) -> None:
        """A case counted in an area's day: a plain row written with the batch's commit."""
        if tx.batch is None:
            self.s.add(AreaCase(area=area, case_id=case_id, day=day))
        else:
            tx.add_rows(AreaCase, [{"area": area, "case_id": case_id, "day": day}])
            self.area_cases_added.append((area, case_id, day))

    async def read_areas(
        self, areas: Sequence[str], first: date, last: date, keys: Sequence[str]
    ) -> None:
        """Read the day rows of many areas over a range (and the active warnings of some keys)
        at once: what `area_count` and `active` would read one area and one key at a time."""
        lo, hi = first - PAD, last + PAD
        todo = [a for a in areas if a not in self.days_read]
        for i in range(0, len(todo), 500):
            chunk = todo[i : i + 500]
            got = await self.s.exec(DAYS_OF_AREAS, params={"ids": chunk, "lo": lo, "hi": hi})
            for area, day, n in got.all():
                self.days.setdefault(area, {})[day] = n
            for a in chunk:
                self.days.setdefault(a, {})
                self.days_read[a] = (lo, hi)
        wanted = [k for k in keys if k not in self.active_by_key]
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            for k in chunk:
                self.active_by_key[k] = None
            for w in (await self.s.exec(ACTIVE_OF_KEYS, params={"ids": chunk})).all():
                if w.active_key in self.active_by_key:
                    self.active_by_key[w.active_key] = w

    async def area_cases(self, area: str, first: date, limit: int = 50) -> list[str]:
        """The newest cases of an area since a day (when a rising area is raised: rare): the
        stored ones and those the batch counted, newest day first."""
        if self.tx.batch is None:  # a batch's area cases are plain rows (in area_cases_added)
            await self.s.flush()
        stored = await wrepo.area_cases_by_day(self.s, area, first, limit)
        added = [(d, c) for a, c, d in self.area_cases_added if a == area and d >= first]
        if not added:
            return [c for _, c in stored]
        both = sorted(set(stored) | set(added), key=lambda dc: (-dc[0].toordinal(), dc[1]))
        return [c for _, c in both[:limit]]

    # ---- employers -------------------------------------------------------------------------

    def add_employer(self, row: EmployerCase) -> None:
        self.s.add(row)
        self.employers_added.append(row)

    async def employer_rows_of(self, case_id: str) -> list[EmployerCase]:
        rows = await wrepo.employer_rows_of(self.s, case_id)
        return _merged(rows, self.employers_added, lambda a: a.case_id == case_id)

    def set_employer_open(self, row: EmployerCase, is_open: bool) -> None:
        """A labour case ended or reopened: its claim against the employer follows."""
        row.open = is_open
        self.s.add(row)
        self.employer_open[(row.employer_key, row.case_id)] = is_open

    async def open_employer_cases(self, key: str, since: datetime) -> list[Claim]:
        """Open labour cases against an employer received since a time (open as it is now).

        Read as plain columns once per key and batch (an employer with many claims has many
        rows, read again each batch: no ORM object each), merged with the claims the
        transaction added and the cases it ended or reopened."""
        since = utc(since)
        cached = self.employer_rows.get(key)
        if cached is None or since < cached[0]:
            keys = [key]
            if not self.batch_employers_read and self.tx.batch is not None:
                # the first read of a batch reads every employer its entries name, at once
                self.batch_employers_read = True
                more = _employer_keys(self.tx.batch.envelopes) - set(self.employer_rows)
                keys = sorted({key, *more})
            for k in keys:
                self.employer_rows[k] = (since, {})
            e = EmployerCase
            stmt = select(
                col(e.employer_key), col(e.case_id), col(e.received_at), col(e.open)
            ).where(col(e.employer_key).in_(keys), col(e.received_at) >= since)
            for k, case_id, received, is_open in (await self.s.exec(stmt)).all():
                self.employer_rows[k][1][case_id] = Claim(case_id, utc(received), is_open)
        stored = self.employer_rows[key][1]
        out = [c for c in stored.values() if c.received_at >= since]
        for a in self.employers_added:  # added here, perhaps flushed and read back above
            if a.employer_key == key and a.case_id not in stored:
                claim = Claim(a.case_id, utc(a.received_at), a.open)
                if claim.received_at >= since:
                    out.append(claim)
        changed = self.employer_open
        return sorted(
            (c for c in out if changed.get((key, c.case_id), c.open)),
            key=lambda c: c.received_at,
        )
