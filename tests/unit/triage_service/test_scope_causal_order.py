"""Triage's scope projection (`triage.scope`) applies trail entries in causal order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.contracts import TrailAppended
from shared.db import Delivery, make_engine, migrate
from shared.events import Envelope
from shared.topics import Topics
from tests.unit.shared.test_trail_heads_concurrency import delivery  # noqa: F401


def scope_projection(engine: Any) -> tuple[Delivery, Any]:
    """Triage's delivery on an engine and its scope projection."""
    from services.triage.case_scope import ScopeProjection
    from services.triage.repository import TABLES as TRIAGE_TABLES

    triage = Delivery(
        async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False),
        TRIAGE_TABLES,
        "triage",
        Topics("review.").trail,
    )
    return triage, ScopeProjection(triage)


async def test_the_scope_projection_keeps_the_newer_tier_when_an_older_entry_comes_late(
    delivery: Delivery,  # noqa: F811 - the fixture of test_trail_heads_concurrency
    tmp_path: Path,
) -> None:
    """services/triage/case_scope.py:32-50 (and _apply, 53-80).

    The trail topic carries entries of every service, each published by its own relay, so an
    entry can arrive before one it follows: that is why intake's feedback and followup's ledger
    go through the CausalGate. Triage's `triage.scope` consumer does not: it sets whatever
    scope facts an entry carries, in arrival order. Mediation escalates a case to the county
    (its entry follows triage's routing entry, tier town); if triage's entry reaches the topic
    late (its produce retried across a leader change while case.triaged went through and
    mediation acted), the projection ends with the older tier: who may read the case's
    decisions (shared.scope) is decided on a superseded tier.
    """
    from services.triage.repository import TriageBase, TriageCaseScope

    async with delivery.transaction() as tx:  # the producers' side: triage, then mediation
        routed = tx.transition(
            "case-9",
            action="triage",
            from_status="received",
            to_status="triaged",
            actor="system:triage",
            details={
                "dispute_type": "neighbour",
                "severity": "low",
                "channel": "people",
                "tier": "town",
                "rule_id": "r1",
                "rules_version": "v1",
            },
        )
    async with delivery.transaction() as tx:
        escalated = tx.transition(
            "case-9",
            action="escalate",
            from_status="mediating",
            to_status="mediating",
            actor="user:m1",
            details={"from_tier": "town", "to_tier": "county"},
        )
    assert escalated.payload["follows"] == [routed.event_id]

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'triage.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(TriageBase.metadata.create_all)
        triage, scope = scope_projection(engine)
        for env in (escalated, routed):  # the routing entry arrives after the escalation
            wire = Envelope.from_bytes(env.to_bytes())
            await scope.trail_appended(wire, TrailAppended.model_validate(wire.payload))
        async with triage.sessions() as s:
            row = await s.get(TriageCaseScope, "case-9")
    finally:
        await engine.dispose()

    assert row is not None
    assert row.tier == "county", f"scope tier {row.tier!r}: the escalation was undone"


def _v7_made(at: datetime) -> str:
    """A UUID v7 event id made at `at`."""
    return f"{int(at.timestamp() * 1000):012x}" + "7" + uuid.uuid4().hex[13:]


async def test_causes_from_before_the_gate_began_count_as_applied(
    delivery: Delivery,  # noqa: F811 - the fixture of test_trail_heads_concurrency
    tmp_path: Path,
) -> None:
    """A triage database upgraded by its migrations: the gate began then (causal_gate_epochs).
    Before, the projection recorded only the entries that changed a scope fact, so an entry of
    a live case may follow one it never recorded: made before the epoch (or with an id that
    tells no time, older still) it counts as applied; one made after the epoch and not seen
    yet is waited for."""
    from services.triage.main import MIGRATIONS
    from services.triage.repository import TriageCaseScope

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'triage.db'}")
    try:
        await migrate(engine, MIGRATIONS)
        triage, scope = scope_projection(engine)
        old = datetime.now(UTC) - timedelta(days=2)
        unseen = {
            "case-old": [_v7_made(old)],  # skipped before the gate began
            "case-v4": [uuid.uuid4().hex],  # from before event ids told time
            "case-new": [_v7_made(datetime.now(UTC) + timedelta(seconds=1))],  # not here yet
        }
        for case_id, follows in unseen.items():
            async with delivery.transaction() as tx:
                env = tx.transition(
                    case_id,
                    action="escalate",
                    from_status="mediating",
                    to_status="mediating",
                    actor="user:m1",
                    details={"from_tier": "town", "to_tier": "county"},
                )
            env.payload["follows"] = follows  # as a live case's entry would name them
            wire = Envelope.from_bytes(env.to_bytes())
            await scope.trail_appended(wire, TrailAppended.model_validate(wire.payload))
        async with triage.sessions() as s:
            tiers = {c: (await s.get(TriageCaseScope, c)) for c in unseen}
        assert {c: (r.tier if r else None) for c, r in tiers.items()} == {
            "case-old": "county",
            "case-v4": "county",
            "case-new": None,
        }
        assert await scope.gate.parked() == 1 and await scope.gate.parked("case-new") == 1
    finally:
        await engine.dispose()
