"""Ledger HTTP routes for dashboards: cases, one case, its trail, the chain check, stats."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder

from services.followup import repository as repo
from services.followup.domain import CaseFilters, as_utc, rate, scope_of
from services.followup.ledger import verify_chain
from services.followup.reporting import repository as aggregates
from services.followup.reporting.domain import scope_public
from services.followup.repository import LedgerCase, LedgerEntry
from services.followup.schemas import CasePage, CasePublic, ChainCheck, Stats, Trail
from shared.contracts import CaseStatus
from shared.errors import Invalid, NotFound
from shared.web import CurrentStaff

router = APIRouter(prefix="/v1", tags=["ledger"])

Tier = Literal["grid", "town", "county"]
Severity = Literal["low", "medium", "high", "critical"]
Source = Literal["110", "12345", "grid"]
Code = Annotated[str, Query(min_length=1, max_length=40, pattern=r"^[a-z_]+$")]


# ---------------------------------------------------------------------------------------------
# Response helpers


def _time(value: datetime | None) -> str | None:
    at = as_utc(value)
    return at.isoformat().replace("+00:00", "Z") if at else None


def case_public(c: LedgerCase) -> dict[str, Any]:
    """A case as dashboards see it: no personal data, parties masked."""
    return {
        "case_id": c.case_id,
        "status": c.status,
        "source": c.source,
        "source_ref": c.source_ref,
        "dispute_type": c.dispute_type,
        "severity": c.severity,
        "channel": c.channel,
        "co_channels": c.co_channels,
        "tier": c.tier,
        "first_tier": c.first_tier,
        "organisation_id": c.organisation_id,
        "mediator_id": c.mediator_id,
        "grid_code": c.grid_code,
        "parties": c.parties,
        "sign_for_due": _time(c.sign_for_due),
        "mediation_due": _time(c.mediation_due),
        "sign_for_overdue": c.sign_for_overdue,
        "mediation_overdue": c.mediation_overdue,
        "overdue": c.overdue,
        "created_at": _time(c.created_at),
        "updated_at": _time(c.updated_at),
        "received_at": _time(c.received_at),
        "agreed_at": _time(c.agreed_at),
        "closed_at": _time(c.closed_at),
        "return_count": c.return_count,
        "escalation_count": c.escalation_count,
        "reopen_count": c.reopen_count,
        "satisfaction": c.satisfaction,
        "entries": c.entries,
        "version": c.version,
    }


def entry_public(e: LedgerEntry) -> dict[str, Any]:
    """A trail entry with its chain links."""
    return {
        "seq": e.seq,
        "at": _time(e.at),
        "actor": e.actor,
        "actor_role": e.actor_role,
        "action": e.action,
        "from_status": e.from_status,
        "to_status": e.to_status,
        "reason": e.reason,
        "details": e.details,
        "producer": e.producer,
        "event_id": e.event_id,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


def tagged(request: Request, body: dict[str, Any]) -> Response:
    """A JSON response with a strong ETag; 304 when If-None-Match already holds it."""
    # plain values go straight to json (a year of day buckets is thousands of numbers, and
    # jsonable_encoder walks each one in Python); anything else is encoded as FastAPI would
    raw = json.dumps(
        body, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=jsonable_encoder
    ).encode()
    etag = f'"{hashlib.sha256(raw).hexdigest()[:32]}"'
    # the body depends on who asks: caches must keep it per token
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Authorization"}
    wanted = request.headers.get("if-none-match")
    if wanted is not None:
        tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
        if "*" in tags or etag in tags:
            return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


def invalid(field: str, reason: str) -> Invalid:
    """A 422 naming the field, shaped like the validation errors."""
    return Invalid.field(field, reason)


def encode_cursor(version: int, descending: bool) -> str:
    """An opaque cursor: the ledger sequence of the last case seen and the order."""
    raw = json.dumps({"v": version, "d": descending}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, descending: bool) -> int:
    """The ledger sequence inside a cursor; 422 when it is not one of ours."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        version, order = data["v"], data["d"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise invalid("cursor", "not a cursor returned by this API") from None
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise invalid("cursor", "not a cursor returned by this API")
    if order != descending:
        raise invalid("cursor", "the cursor was made for the other order")
    return version


def filters_of(
    status: CaseStatus | None,
    channel: str | None,
    tier: str | None,
    severity: str | None,
    dispute_type: str | None,
    source: str | None,
    overdue: bool | None,
    since: datetime | None,
) -> CaseFilters:
    """Query parameters → filters."""
    try:
        changed_since = as_utc(since)
    except OverflowError:  # an offset that takes year 1 or 9999 out of the calendar in UTC
        raise invalid("since", "a time the calendar has in UTC") from None
    return CaseFilters(
        status=status.value if status else None,
        channel=channel,
        tier=tier,
        severity=severity,
        dispute_type=dispute_type,
        source=source,
        overdue=overdue,
        since=changed_since,
    )


# ---------------------------------------------------------------------------------------------
# Routes


@router.get("/cases", response_model=CasePage)
async def list_cases(
    request: Request,
    staff: CurrentStaff,
    status: CaseStatus | None = None,
    channel: Code | None = None,
    tier: Tier | None = None,
    severity: Severity | None = None,
    dispute_type: Code | None = None,
    source: Source | None = None,
    overdue: bool | None = None,
    since: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    order: Literal["asc", "desc"] = "asc",
) -> Response:
    """Cases in ledger order (asc = oldest change first, a changes feed), filtered, paged."""
    descending = order == "desc"
    after = decode_cursor(cursor, descending) if cursor else None
    limit = min(limit, request.app.state.settings.max_page_size)
    filters = filters_of(status, channel, tier, severity, dispute_type, source, overdue, since)
    async with request.app.state.runtime.sessions() as session:
        rows = await repo.list_cases(
            session, filters, scope_of(staff), after, limit + 1, descending
        )
    has_more = len(rows) > limit
    rows = rows[:limit]
    if rows:
        next_cursor: str | None = encode_cursor(rows[-1].version, descending)
    else:
        next_cursor = cursor if not descending else None
    if descending and not has_more:
        next_cursor = None
    return tagged(
        request,
        {
            "items": [case_public(r) for r in rows],
            "count": len(rows),
            "has_more": has_more,
            "next_cursor": next_cursor,
        },
    )


async def _visible_case(request: Request, staff: CurrentStaff, case_id: str) -> LedgerCase:
    async with request.app.state.runtime.sessions() as session:
        row = await repo.get_case(session, case_id, scope_of(staff))
    if row is None:
        raise NotFound("case", "case_id")
    return row


@router.get("/cases/{case_id}", response_model=CasePublic)
async def get_case(case_id: str, request: Request, staff: CurrentStaff) -> Response:
    """One case as the ledger projects it (personal data masked)."""
    return tagged(request, case_public(await _visible_case(request, staff, case_id)))


@router.get("/cases/{case_id}/trail", response_model=Trail)
async def get_trail(case_id: str, request: Request, staff: CurrentStaff) -> Response:
    """Every entry of the case's trail, in order, with its hash links."""
    await _visible_case(request, staff, case_id)
    async with request.app.state.runtime.sessions() as session:
        entries = await repo.entries_of(session, case_id)
    return tagged(request, {"case_id": case_id, "entries": [entry_public(e) for e in entries]})


@router.get("/cases/{case_id}/trail/verify", response_model=ChainCheck)
async def verify_trail(case_id: str, request: Request, staff: CurrentStaff) -> dict[str, Any]:
    """Recompute the hash chain: does every entry still say what it said when appended?"""
    case = await _visible_case(request, staff, case_id)
    for _ in range(5):
        # the entries and the case's head as of one moment: an entry appended between the two
        # reads (they are separate statements) would look like an entry beyond the head
        async with request.app.state.runtime.sessions() as session:
            entries = await repo.entries_of(session, case_id)
            now = await session.get(LedgerCase, case_id)
        if now is None or now.version == case.version:
            break
        case = now
    check = verify_chain(
        [e.stored() for e in entries], head_hash=case.last_hash, head_seq=case.entries
    )
    return {"case_id": case_id, **check.to_dict()}


@router.get("/stats", response_model=Stats)
async def get_stats(
    request: Request,
    staff: CurrentStaff,
    channel: Code | None = None,
    tier: Tier | None = None,
    severity: Severity | None = None,
    dispute_type: Code | None = None,
    source: Source | None = None,
    since: datetime | None = None,
) -> Response:
    """Counts and rates over the cases the caller may see (from the daily aggregates)."""
    filters = filters_of(None, channel, tier, severity, dispute_type, source, None, since)
    scope = scope_of(staff)
    async with request.app.state.runtime.sessions() as session:
        # the counters are kept per event (no scan of the cases); they cannot answer "changed
        # since" (a property of cases, not of received months), a mediator's scope (their
        # organisation and the cases their channel co-handles) or two filters at once
        raw = None if since is not None else await aggregates.stats(session, filters, scope)
        if raw is None:
            raw = await repo.stats(session, filters, scope)
    t = raw["totals"]
    n_sat = t["satisfaction_count"]
    mean = round(t["satisfaction_sum"] / n_sat, 2) if n_sat else None
    body: dict[str, Any] = {
        **{k: v for k, v in raw.items() if k.startswith("by_")},
        "total": t["total"],
        "mediation_success": {
            "settled": t["settled"],
            "unsettled": t["unsettled"],
            "rate": rate(t["settled"], t["settled"] + t["unsettled"]),
        },
        "on_time": {
            "agreed_with_deadline": t["agreed_with_deadline"],
            "on_time": t["agreed_on_time"],
            "rate": rate(t["agreed_on_time"], t["agreed_with_deadline"]),
        },
        "satisfaction": {"mean": mean, "responses": n_sat},
        "settled_at_first_tier": {
            "settled": t["settled"],
            "at_first_tier": t["settled_at_first_tier"],
            "rate": rate(t["settled_at_first_tier"], t["settled"]),
        },
        "backlog": t["backlog"],
        "overdue": t["overdue"],
        "period": {"from": None, "to": None, "changed_since": _time(as_utc(since))},
        "time_zone": "Asia/Shanghai",
        "scope": scope_public(staff),
    }
    return tagged(request, body)
