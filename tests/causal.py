"""A case's trail as the services write it in causal order, for tests that deliver it shuffled."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts import REGISTRY, TrailAppended
from shared.events import Envelope

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)

# (producer, action, from, to, the step it follows) — index into this list; -1 = nothing.
# A repeat report (merge) is a branch off the receipt: it follows intake's own entry only.
LIFE: list[tuple[str, str, str | None, str, int]] = [
    ("intake", "receive", None, "received", -1),
    ("triage", "triage", "received", "triaged", 0),
    ("intake", "merge", "received", "received", 0),
    ("mediation", "assign", "triaged", "assigned", 1),
    ("mediation", "accept", "assigned", "accepted", 3),
    ("mediation", "note", "accepted", "mediating", 4),
    ("mediation", "agree", "mediating", "agreed", 5),
    ("followup", "follow_up", "agreed", "follow_up", 6),
    ("followup", "close", "follow_up", "closed", 7),
]

DETAILS: dict[str, dict[str, Any]] = {
    "receive": {"source": "12345", "source_ref": "WO-C", "grid_code": "522731001"},
    "triage": {
        "source": "12345",
        "source_ref": "WO-C",
        "dispute_type": "neighbour",
        "severity": "low",
        "channel": "people",
        "tier": "grid",
    },
    "merge": {"source": "110", "source_ref": "M-C", "repeat_count": 2},
}


def case_life(case_id: str, first: Envelope | None = None, skip: int = 0) -> list[Envelope]:
    """The trail envelopes of one case's life, each naming what it follows, in causal order.

    With `first` (a real receipt entry), the life continues from it and starts at step 1.
    """
    envs: list[Envelope] = []
    by_step: dict[int, Envelope] = {}
    if first is not None:
        by_step[0] = first
    for i, (producer, action, frm, to, after) in enumerate(LIFE):
        if i < skip or (first is not None and i == 0):
            continue
        cause = by_step.get(after)
        entry = TrailAppended(
            case_id=case_id,
            at=T0 + timedelta(hours=i),
            actor=f"system:{producer}",
            action=action,
            from_status=frm,
            to_status=to,
            details=DETAILS.get(action, {}),
            follows=[cause.event_id] if cause else [],
            seq=(TrailAppended.model_validate(cause.payload).seq + 1) if cause else 1,
        )
        env = REGISTRY.event(entry, event_type="trail.appended", producer=producer, case_id=case_id)
        by_step[i] = env
        envs.append(env)
    return envs


def shuffled(envs: list[Envelope], seed: int) -> list[Envelope]:
    """The same entries in another order (reversed for seed 0)."""
    if seed == 0:
        return list(reversed(envs))
    out = list(envs)
    random.Random(seed).shuffle(out)
    return out


def causal_position_ok(event_ids: list[str], envs: list[Envelope]) -> bool:
    """Whether every entry comes after each entry it follows."""
    where = {e: i for i, e in enumerate(event_ids)}
    for env in envs:
        for f in env.payload.get("follows", []):
            if f in where and where[f] > where[env.event_id]:
                return False
    return True


def note_entry(
    case_id: str, event_id: str, follows: list[str], at: datetime
) -> tuple[Envelope, TrailAppended]:
    """One trail entry of `case_id` with a chosen id, following `follows` (ids of any form)."""
    payload = TrailAppended(
        case_id=case_id,
        at=at,
        actor="system:test",
        action="note",
        to_status="received",
        follows=follows,
        seq=len(follows) + 1,
    )
    env = Envelope(
        event_id=event_id,
        event_type="trail.appended",
        producer="mediation",
        case_id=case_id,
        correlation_id="r1",
        payload=payload.model_dump(mode="json"),
    )
    return env, payload


def status_entry(
    case_id: str,
    to: str,
    frm: str | None,
    action: str,
    at: datetime,
    details: dict[str, Any] | None = None,
    party_hashes: list[str] | None = None,
) -> tuple[Envelope, TrailAppended]:
    """One trail entry moving a case from `frm` to `to`, as the ledger's tests hand it over."""
    ev = TrailAppended(
        case_id=case_id,
        at=at,
        actor="system:test",
        action=action,
        from_status=frm,
        to_status=to,
        details=details or {},
        party_hashes=party_hashes or [],
    )
    return REGISTRY.event(ev, event_type="trail.appended", producer="test", case_id=case_id), ev
