"""Assignment of a case to an organisation and an on-duty mediator, and the service context."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.mediation.channels import CaseView, ChannelRegistry, MediationChannel
from services.mediation.domain import (
    WORKLOAD_STATUSES,
    DutyHours,
    MediatorFacts,
    OrgFacts,
    aware,
    next_status,
    on_duty,
    pick_coordination,
    pick_mediator,
    pick_organisation,
)
from services.mediation.repository import (
    AnyCase,
    CaseReader,
    MediationCase,
    NewCase,
    Organisation,
    StaffMember,
    open_case_counts,
    organisations,
    staff_of,
)
from services.mediation.settings import MediationSettings
from shared.clock import Clock
from shared.contracts import CaseStatus as S
from shared.db import Delivery, Tx, find_new_or_stored, save_new_or_stored
from shared.db import insert_new as insert_new_row
from shared.pii import PiiCipher
from shared.scope import case_area
from shared.topics import Topics

log = logging.getLogger("fengqiao.mediation")

SYSTEM = "system:mediation"
AfterCommit = Callable[[], Awaitable[None]]


class Directory:
    """Organisations and mediators as assignment sees them, cached in the process.

    They change only through the admin routes, which call invalidate() once committed, so this
    instance assigns by the new facts at once; what another instance (or process) changed is
    read again within ttl_s. A load that overlaps an invalidation is used once, not kept.
    """

    def __init__(self, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.clock = ttl_s, clock
        self._generation = 0
        self._orgs: tuple[float, list[OrgFacts]] | None = None
        self._mediators: dict[str, tuple[float, list[MediatorFacts]]] = {}

    def invalidate(self) -> None:
        """Forget everything (an organisation or a member of staff was written)."""
        self._generation += 1
        self._orgs = None
        self._mediators.clear()

    def _fresh(self, at: float) -> bool:
        return self.clock() - at < self.ttl_s

    async def organisations(self, tx: Tx) -> list[OrgFacts]:
        """The active organisations, by id."""
        if self._orgs is not None and self._fresh(self._orgs[0]):
            return self._orgs[1]
        generation, at = self._generation, self.clock()
        facts = [o.facts() for o in await organisations(tx.session)]
        if generation == self._generation:
            self._orgs = (at, facts)
        return facts

    async def mediators(self, tx: Tx, organisation_id: str) -> list[MediatorFacts]:
        """The mediators of an organisation, by id."""
        hit = self._mediators.get(organisation_id)
        if hit is not None and self._fresh(hit[0]):
            return hit[1]
        generation, at = self._generation, self.clock()
        rows = await staff_of(tx.session, organisation_id, role="mediator")
        facts = [m.facts() for m in rows]
        if generation == self._generation:
            self._mediators[organisation_id] = (at, facts)
        return facts


@dataclass
class Context:
    """What handlers, actions and the scanner share."""

    settings: MediationSettings
    delivery: Delivery
    topics: Topics
    clock: Clock
    channels: ChannelRegistry
    cipher: PiiCipher
    directory: Directory = field(default_factory=Directory)

    @property
    def hours(self) -> DutyHours:
        """Duty hours from settings."""
        s = self.settings
        return DutyHours(s.timezone, s.day_shift_start_hour, s.day_shift_end_hour)

    def channel(self, code: str) -> MediationChannel | None:
        """The plugin of a channel, or None when the code is not registered."""
        return self.channels.get(code) if code in self.channels else None


def case_view(case: AnyCase) -> CaseView:
    """The non-personal view of a case that channel plugins get."""
    return CaseView(
        case.case_id,
        case.channel,
        case.tier,
        case.dispute_type,
        case.severity,
        case.status,
        case.organisation_id,
        case.mediator_id,
        case.source,
        case.source_ref,
    )


def _iso(when: datetime | None) -> str | None:
    return aware(when).isoformat() if when is not None else None


def trail_details(case: AnyCase, **extra: Any) -> dict[str, Any]:
    """Non-personal attributes the ledger projects from each trail entry."""
    out: dict[str, Any] = {
        "source": case.source,
        "source_ref": case.source_ref,
        "dispute_type": case.dispute_type,
        "severity": case.severity,
        "channel": case.channel,
        "tier": case.tier,
        "grid_code": case.grid_code,
        "organisation_id": case.organisation_id,
        "mediator_id": case.mediator_id,
        "sign_for_due": _iso(case.sign_for_due),
        "mediation_due": _iso(case.mediation_due),
    }
    return out | extra


async def run_after_commit(callbacks: list[AfterCommit]) -> None:
    """Tell channel plugins after the state is safely stored; a plugin error is logged only."""
    for cb in callbacks:
        try:
            await cb()
        except Exception as exc:  # the case is committed; the plugin may retry on its side
            log.error("channel plugin failed", extra={"error": type(exc).__name__})


def notify_assigned(ctx: Context, case: AnyCase) -> list[AfterCommit]:
    """A callback telling the case's channel about the assignment."""
    plugin, view = ctx.channel(case.channel), case_view(case)
    if plugin is None:
        return []

    async def cb() -> None:
        await plugin.on_assigned(view)

    return [cb]


def save(tx: Tx, case: AnyCase) -> None:
    """Keep the case's changes (a new case's in its queued row)."""
    save_new_or_stored(tx, case)


def insert_new(tx: Tx, case: NewCase) -> None:
    """Queue a new case's row (one executemany per batch); later events of the batch find it."""
    insert_new_row(tx, MediationCase, case)
    if tx.batch is not None:
        # No trail heads either: this service writes a case's heads only with its row, so the
        # batch's seal reads none for it. Were the case stored after all, the heads' insert
        # fails with the case's (the batch is replayed one by one, and that looks).
        tx.batch.heads.fresh([case.case_id])


async def find_case(tx: Tx, case_id: str, *, expect_new: bool = False) -> AnyCase | None:
    """The case: new in this batch (not written yet), else the stored row (`expect_new`: a
    first routing, which reads no stored rows in a batch)."""
    found: AnyCase | None = await find_new_or_stored(
        tx, MediationCase, case_id, expect_new=expect_new
    )
    return found


async def assign(
    ctx: Context,
    tx: Tx,
    case: AnyCase,
    *,
    now: datetime,
    action: str = "assign",
    actor: str = SYSTEM,
    actor_role: str = "system",
    manual: bool = False,
    organisation: Organisation | None = None,
    mediator: StaffMember | None = None,
    reason: str = "",
) -> list[AfterCommit]:
    """Give the case to an organisation and, if one is on duty, a mediator; write the trail.

    `manual` sends it to the coordination centre of its tier for a person to assign;
    `organisation`/`mediator` are a coordinator's explicit choice.
    """
    before = _workload_slot(case)
    try:
        return await _assign(
            ctx,
            tx,
            case,
            now=now,
            action=action,
            actor=actor,
            actor_role=actor_role,
            manual=manual,
            organisation=organisation,
            mediator=mediator,
            reason=reason,
        )
    finally:
        _count_moved(tx, case, before, _workload_slot(case))


async def _assign(
    ctx: Context,
    tx: Tx,
    case: AnyCase,
    *,
    now: datetime,
    action: str,
    actor: str,
    actor_role: str,
    manual: bool,
    organisation: Organisation | None,
    mediator: StaffMember | None,
    reason: str,
) -> list[AfterCommit]:
    facts = await ctx.directory.organisations(tx)
    why: list[str] = [reason] if reason else []
    chosen: OrgFacts | None
    if organisation is not None:
        chosen = organisation.facts()
        why.append(f"指派至{organisation.name}")
    elif manual:
        chosen = pick_coordination(facts, case.tier, case.grid_code)
        why.append(f"已退单{case.return_count}次，交{case.tier}级矛调中心人工指派")
    else:
        chosen, org_why = pick_organisation(facts, case.channel, case.tier, case.grid_code)
        why.append(org_why)

    if chosen is None:
        # Nobody can take it: it stays triaged and waits for a coordinator.
        case.organisation_id, case.mediator_id, case.updated_at = None, None, now
        case.area_code = case_area(case.grid_code)
        save(tx, case)
        why.append("暂无可指派机构，等待协调员指派")
        tx.transition(
            case.case_id,
            action="unassigned",
            from_status=case.status,
            to_status=case.status,
            actor=actor,
            actor_role=actor_role,
            reason="；".join(why),
            details=trail_details(case),
            at=now,
        )
        return []

    to_status = next_status(action, case.status)
    from_status = case.status
    picked: str | None = None
    if mediator is not None:
        picked = mediator.id
        why.append("协调员指定调解员")
    elif chosen.kind == "mediation" and not manual:
        mediators = await ctx.directory.mediators(tx, chosen.id)
        m: MediatorFacts | None = None
        # open cases are counted only when someone is on duty to take the case (an office
        # without night on-call, at night, reads none)
        if any(x.organisation_id == chosen.id and on_duty(x, now, ctx.hours) for x in mediators):
            counts = await _open_counts(tx, chosen.id)
            m = pick_mediator(mediators, chosen.id, counts, now, ctx.hours)
        if m is None:
            why.append("当前无值班调解员，进入机构待办队列")
        else:
            picked = m.id
            why.append(f"值班调解员在办{counts.get(m.id, 0)}件，最少")
    else:
        why.append("进入协调中心待办队列")

    if chosen.kind == "mediation" and chosen.channel:
        case.channel = chosen.channel
    case.organisation_id, case.mediator_id = chosen.id, picked
    case.area_code = case_area(case.grid_code)
    case.status, case.updated_at = to_status, now
    if from_status == S.escalated and case.sign_for_window_s:
        case.sign_for_due = now + timedelta(seconds=case.sign_for_window_s)
        case.sign_for_overdue = False  # a new organisation signs for it by a new deadline
    save(tx, case)
    await _share_with_co_channels(tx, case, facts)
    tx.transition(
        case.case_id,
        action=action,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        actor_role=actor_role,
        reason="；".join(w for w in why if w),
        details=trail_details(case, organisation_kind=chosen.kind, queued=picked is None),
        at=now,
    )
    return notify_assigned(ctx, case)


_OPEN_COUNTS = "mediation.open_counts"  # batch memo: organisation → {mediator: open cases}
_UNWRITTEN = "mediation.unwritten_counts"  # batch memo: the same, of the batch's new cases


def _workload_slot(case: AnyCase) -> tuple[str, str] | None:
    """Whose open-case count the case adds to (organisation, mediator), if anyone's."""
    if case.organisation_id and case.mediator_id and case.status in WORKLOAD_STATUSES:
        return case.organisation_id, case.mediator_id
    return None


async def _open_counts(tx: Tx, organisation_id: str) -> dict[str, int]:
    """Open cases per mediator of an organisation.

    In a consumer batch read once per organisation (the query's autoflush counts what the
    batch changed on stored cases so far; the batch's new cases, written only at its commit,
    are added from _UNWRITTEN) and then kept up to date by assign() as the batch moves cases
    (_count_moved), so each case costs no GROUP BY.
    """
    if tx.batch is None:
        return await open_case_counts(tx.session, organisation_id)
    counts: dict[str, dict[str, int]] = tx.batch.memo.setdefault(_OPEN_COUNTS, {})
    if organisation_id not in counts:
        read = await open_case_counts(tx.session, organisation_id)
        unwritten: dict[str, dict[str, int]] = tx.batch.memo.get(_UNWRITTEN, {})
        for mediator, n in unwritten.get(organisation_id, {}).items():
            read[mediator] = read.get(mediator, 0) + n
        counts[organisation_id] = read
    return counts[organisation_id]


def _count_moved(
    tx: Tx, case: AnyCase, before: tuple[str, str] | None, after: tuple[str, str] | None
) -> None:
    """Move a case's weight between mediators in the batch's counts (the organisations read so
    far) and, for a new case no query can see yet, in _UNWRITTEN (for those read later).

    Within a consumer batch only assign() changes a case's organisation, mediator or workload
    status, so the counts stay what the query would answer now.
    """
    if tx.batch is None or before == after:
        return
    memo = tx.batch.memo
    books: list[dict[str, dict[str, int]]] = [memo.get(_OPEN_COUNTS, {})]
    if isinstance(case, NewCase):
        books.append(memo.setdefault(_UNWRITTEN, {}))
    for slot, step in ((before, -1), (after, 1)):
        if slot is None:
            continue
        for i, book in enumerate(books):
            if i == 0 and slot[0] not in book:
                continue  # not read yet: the query will count a stored case itself
            org = book.setdefault(slot[0], {})
            org[slot[1]] = org.get(slot[1], 0) + step


async def _share_with_co_channels(tx: Tx, case: AnyCase, facts: list[OrgFacts]) -> None:
    """A read-only copy for an organisation of each co-channel (same tier, covering the area)."""
    for co in case.co_channels:
        if co == case.channel:
            continue
        org, _ = pick_organisation(facts, co, case.tier, case.grid_code)
        if org is None:
            continue
        if isinstance(case, NewCase):  # no copy stored yet: those given are on the case
            if org.id not in case.readers:
                case.readers.add(org.id)
                tx.add_rows(
                    CaseReader,
                    [{"case_id": case.case_id, "organisation_id": org.id, "channel": co}],
                )
        elif await tx.session.get(CaseReader, (case.case_id, org.id)) is None:
            tx.session.add(CaseReader(case_id=case.case_id, organisation_id=org.id, channel=co))
