"""Pure ledger rules: the hash chain, what the ledger keeps of an entry, the case projection.

No framework imports here: plain data in, plain data out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.followup.domain import as_utc, parse_time, utc
from shared.contracts import CaseStatus as S
from shared.contracts import SuperviseDetails, SupervisionKind, TrailAction, read_trail_details
from shared.pii import mask_name, redact_text

# ---------------------------------------------------------------------------------------------
# The hash chain

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class EntryContent:
    """What a ledger entry says; the hash covers exactly these fields and the previous hash."""

    case_id: str
    seq: int
    at: datetime
    actor: str
    actor_role: str
    action: str
    from_status: str | None
    to_status: str
    reason: str
    details: Mapping[str, Any]
    follows: tuple[str, ...] = ()  # the entries (event ids) this one follows


def canonical_time(value: datetime) -> str:
    """One spelling per instant, whatever the database hands back."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(prev_hash: str, e: EntryContent) -> str:
    """SHA-256 over a canonical JSON of the previous hash and the entry's content."""
    doc = {
        "prev_hash": prev_hash,
        "case_id": e.case_id,
        "seq": e.seq,
        "at": canonical_time(e.at),
        "actor": e.actor,
        "actor_role": e.actor_role,
        "action": e.action,
        "from_status": e.from_status,
        "to_status": e.to_status,
        "reason": e.reason,
        "details": e.details,
    }
    if e.follows:  # entries from before causal order hash as they always did
        doc["follows"] = sorted(e.follows)
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class StoredEntry:
    """A ledger entry as stored: its content, its link and its hash."""

    content: EntryContent
    prev_hash: str
    hash: str
    event_id: str = ""


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of checking a case's chain."""

    valid: bool
    entries: int
    broken_at: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "valid": self.valid,
            "entries": self.entries,
            "broken_at": self.broken_at,
            "reason": self.reason,
        }


def verify_chain(
    entries: Sequence[StoredEntry], head_hash: str | None = None, head_seq: int | None = None
) -> ChainCheck:
    """Recompute every link in order; report the first entry that does not hold.

    `head_hash`/`head_seq` are what the case record remembers of its newest entry, so an entry
    cut off the end of the chain is noticed too.
    """
    prev = GENESIS_HASH
    seen: set[str] = set()
    for i, e in enumerate(entries, start=1):
        seq = e.content.seq
        if seq != i:
            return ChainCheck(False, len(entries), i, f"entry {i} is missing (found {seq})")
        if any(f not in seen for f in e.content.follows):
            return ChainCheck(
                False, len(entries), seq, "entry is chained before an entry it follows"
            )
        seen.add(e.event_id)
        if e.prev_hash != prev:
            return ChainCheck(
                False, len(entries), seq, "prev_hash does not match the hash of the entry before"
            )
        if entry_hash(e.prev_hash, e.content) != e.hash:
            return ChainCheck(False, len(entries), seq, "entry content does not match its hash")
        prev = e.hash
    if head_seq is not None and head_seq != len(entries):
        return ChainCheck(
            False,
            len(entries),
            len(entries) + 1,
            f"the case records {head_seq} entries, the trail holds {len(entries)}",
        )
    if head_hash is not None and entries and head_hash != prev:
        return ChainCheck(
            False,
            len(entries),
            len(entries),
            "the newest entry is not the one the case record remembers",
        )
    return ChainCheck(True, len(entries))


# ---------------------------------------------------------------------------------------------
# What the ledger keeps of an incoming entry (never personal data)

# Keys whose values are personal data or narrative: never kept in the ledger.
PERSONAL_KEYS = frozenset(
    {
        "name",
        "phone",
        "id_number",
        "address",
        "text",
        "reporter",
        "contact",
        "sealed_contact",
        "note",
        "notes",
        "terms",
        "location",
    }
)
FREE_TEXT_KEYS = frozenset({"reason", "summary", "comment", "evidence"})


def _clean(value: Any, key: str = "") -> Any:
    if isinstance(value, Mapping):
        return {str(k): _clean(v, str(k)) for k, v in value.items() if str(k) not in PERSONAL_KEYS}
    if isinstance(value, list):
        return [_clean(v, key) for v in value]
    if isinstance(value, str) and key in FREE_TEXT_KEYS:
        return redact_text(value)
    return value


def clean_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Drop personal keys, mask phone/ID numbers in free text, mask person party displays."""
    out: dict[str, Any] = _clean(dict(details))
    if isinstance(details.get("parties"), list):
        out["parties"] = masked_parties(details["parties"])
    return out


def masked_parties(parties: Sequence[Any]) -> list[dict[str, Any]]:
    """Parties as the ledger shows them: persons masked again if they arrive unmasked."""
    out: list[dict[str, Any]] = []
    for p in parties:
        if not isinstance(p, Mapping):
            continue
        kind = p.get("kind") if p.get("kind") in ("person", "organisation") else "person"
        display = str(p.get("display") or "")
        if kind == "person" and display and "*" not in display:
            display = mask_name(display) or ""
        out.append({"role": p.get("role"), "kind": kind, "display": display})
    return out


# ---------------------------------------------------------------------------------------------
# The case projection

TERMINAL = frozenset({S.closed, S.transferred, S.merged})
SETTLED = frozenset({S.agreed, S.follow_up, S.closed})
UNSETTLED = frozenset({S.failed, S.transferred})


@dataclass(frozen=True)
class CaseProjection:
    """A case as its trail says it is (the ledger's `ledger_cases` row)."""

    case_id: str
    status: str = S.received
    source: str | None = None
    source_ref: str | None = None
    dispute_type: str | None = None
    severity: str | None = None
    channel: str | None = None
    co_channels: list[str] = field(default_factory=list)
    tier: str | None = None
    first_tier: str | None = None
    organisation_id: str | None = None
    mediator_id: str | None = None
    grid_code: str | None = None
    parties: list[dict[str, Any]] = field(default_factory=list)
    sign_for_due: datetime | None = None
    mediation_due: datetime | None = None
    sign_for_overdue: bool = False
    mediation_overdue: bool = False
    overdue: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    received_at: datetime | None = None
    agreed_at: datetime | None = None
    closed_at: datetime | None = None
    return_count: int = 0
    escalation_count: int = 0
    reopen_count: int = 0
    satisfaction: int | None = None


_TEXT_FIELDS = (
    "source",
    "source_ref",
    "dispute_type",
    "severity",
    "channel",
    "tier",
    "organisation_id",
    "mediator_id",
)


def _text(value: Any) -> str | None:
    return str(value)[:128] if isinstance(value, str | int) and value != "" else None


def project(p: CaseProjection, e: EntryContent) -> CaseProjection:
    """The case after one more trail entry; missing details keep what was known."""
    d = e.details
    at = as_utc(e.at)
    changes: dict[str, Any] = {}
    # an entry that is not a transition (a merge, a retriage, a note) leaves the status alone:
    # its producer may have written it against an older status
    if e.from_status != e.to_status or p.created_at is None:
        changes["status"] = e.to_status
    for name in _TEXT_FIELDS:
        if (value := _text(d.get(name))) is not None:
            changes[name] = value
    # an escalation names the tier it goes to; its `tier` may still be the one it leaves
    if (to_tier := _text(d.get("to_tier"))) is not None:
        changes["tier"] = to_tier
    if p.first_tier is None and "tier" in changes:
        changes["first_tier"] = changes["tier"]
    if isinstance(d.get("co_channels"), list):
        changes["co_channels"] = [str(c) for c in d["co_channels"]]
    grid = _text(d.get("grid_code"))
    if grid is not None:
        changes["grid_code"] = grid
    if isinstance(d.get("parties"), list):
        changes["parties"] = masked_parties(d["parties"])
    raw_deadlines = d.get("deadlines")
    deadlines: Mapping[str, Any] = raw_deadlines if isinstance(raw_deadlines, Mapping) else {}
    for name in ("sign_for_due", "mediation_due"):
        due = parse_time(d.get(name)) or parse_time(deadlines.get(name))
        if due is not None:
            changes[name] = due
    if e.action == TrailAction.supervise:
        typed = read_trail_details(e.action, dict(d))
        kind = typed.kind if isinstance(typed, SuperviseDetails) else None
        if kind == SupervisionKind.sign_for_overdue:
            changes["sign_for_overdue"] = True
        else:  # mediation_overdue, or a notice whose kind is unreadable: still "overdue"
            changes["mediation_overdue"] = True
    satisfaction = d.get("satisfaction")
    if (
        isinstance(satisfaction, int)
        and not isinstance(satisfaction, bool)
        and 1 <= satisfaction <= 5
    ):
        changes["satisfaction"] = satisfaction
    if p.created_at is None:
        changes["created_at"] = at
    changes["updated_at"] = at if p.updated_at is None or at is None else max(p.updated_at, at)
    to = e.to_status
    if to == S.received and p.received_at is None:
        changes["received_at"] = at
    if to == S.agreed and e.from_status != S.agreed:
        changes["agreed_at"] = at
    if to in (S.closed, S.transferred) and e.from_status != to:
        changes["closed_at"] = at
    if e.from_status != to:
        if to == S.returned:
            changes["return_count"] = p.return_count + 1
        elif to == S.escalated:
            changes["escalation_count"] = p.escalation_count + 1
        elif to == S.reopened:
            changes["reopen_count"] = p.reopen_count + 1
    changes["overdue"] = changes.get("sign_for_overdue", p.sign_for_overdue) or changes.get(
        "mediation_overdue", p.mediation_overdue
    )
    return replace(p, **changes)  # one copy of the case per entry
