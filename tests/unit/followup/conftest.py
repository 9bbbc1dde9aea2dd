"""Helpers for the follow-up unit tests: the app on the in-memory bus, a manual clock, events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.followup.main import create_app
from services.followup.settings import FollowupSettings
from shared.auth import StaffPrincipal, issue_token
from shared.bus import InMemoryBus, OutgoingMessage
from shared.clock import ManualClock
from shared.contracts import REGISTRY, CaseAgreed, TrailAppended
from shared.events import Envelope
from shared.topics import Topics

TOPICS = Topics("")
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)

# A case's life as the other services tell it (received → … → agreed); followup adds the rest.
TRIAGE_DETAILS: dict[str, Any] = {
    "source": "12345",
    "source_ref": "WO-1",
    "dispute_type": "neighbour",
    "severity": "low",
    "channel": "people",
    "co_channels": [],
    "tier": "grid",
    "grid_code": "522731001",
    "deadlines": {
        "sign_for_due": "2026-11-21T00:00:00+00:00",
        "mediation_due": "2026-12-20T00:00:00+00:00",
    },
}


class Ledger:
    """Drives the follow-up app: publish events, settle the outbox, call the API."""

    def __init__(
        self, app: FastAPI, bus: InMemoryBus, clock: ManualClock, client: httpx.AsyncClient
    ) -> None:
        self.app, self.bus, self.clock, self.client = app, bus, clock, client
        self.settings: FollowupSettings = app.state.settings

    def token(self, role: str = "admin", **kw: Any) -> dict[str, str]:
        """Authorization header for a member of staff."""
        p = StaffPrincipal(subject=kw.pop("subject", f"{role}-1"), role=role, **kw)
        return {
            "Authorization": "Bearer "
            + issue_token(self.settings.jwt_private_key, self.settings.jwt_audience, p)
        }

    async def publish(self, topic: str, *envs: Envelope) -> None:
        """Put events on the bus and wait until everything that follows has settled."""
        await self.bus.publish([OutgoingMessage(topic, e.case_id, e.to_bytes()) for e in envs])
        await self.settle()

    async def settle(self) -> None:
        """Drain the bus and the outbox until nothing moves (our own trail comes back to us)."""
        relay = self.app.state.runtime.relay
        while True:
            await self.bus.drain()
            if await relay.publish_pending() == 0:
                await self.bus.drain()
                return

    async def trail(
        self,
        case_id: str,
        to: str,
        frm: str | None = None,
        *,
        action: str | None = None,
        at: datetime | None = None,
        actor: str = "system:test",
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> Envelope:
        """Publish one trail.appended event."""
        env = trail_event(
            case_id, to, frm, action=action, at=at, actor=actor, reason=reason, details=details
        )
        await self.publish(TOPICS.trail, env)
        return env

    async def life(
        self,
        case_id: str,
        upto: str = "agreed",
        *,
        start: datetime = T0,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Publish the trail of a case from received up to a status (one hour apart)."""
        d = {**TRIAGE_DETAILS, **(details or {})}
        steps: list[tuple[str | None, str, str, dict[str, Any]]] = [
            (
                None,
                "received",
                "receive",
                {
                    "source": d["source"],
                    "source_ref": d["source_ref"],
                    "grid_code": d.get("grid_code"),
                },
            ),
            ("received", "triaged", "triage", d),
            (
                "triaged",
                "assigned",
                "assign",
                {
                    "channel": d["channel"],
                    "tier": d["tier"],
                    "organisation_id": d.get("organisation_id"),
                    "mediator_id": d.get("mediator_id"),
                },
            ),
            ("assigned", "accepted", "accept", {}),
            ("accepted", "mediating", "note", {}),
            ("mediating", "agreed", "agree", {}),
        ]
        for i, (frm, to, action, det) in enumerate(steps):
            await self.trail(
                case_id,
                to,
                frm,
                action=action,
                at=start + timedelta(hours=i),
                details={k: v for k, v in det.items() if v is not None},
            )
            if to == upto:
                return

    async def agree(
        self,
        case_id: str,
        agreed_at: datetime,
        *,
        channel: str = "people",
        tier: str = "grid",
        agreement_id: str | None = None,
        organisation_id: str | None = "org-people-1",
    ) -> Envelope:
        """Publish case.agreed."""
        env = REGISTRY.event(
            CaseAgreed(
                case_id=case_id,
                agreement_id=agreement_id or f"agr-{case_id}",
                terms="赔偿两千元",
                agreed_at=agreed_at,
                channel=channel,
                tier=tier,
                organisation_id=organisation_id,
                mediator_id="med-1",
            ),
            event_type="case.agreed",
            producer="mediation",
            case_id=case_id,
        )
        await self.publish(TOPICS.mediation, env)
        return env

    def events(self, topic: str, event_type: str) -> list[Envelope]:
        """Events of a type published on a topic so far."""
        envs = [Envelope.from_bytes(m.value) for m in self.bus.log[topic]]
        return [e for e in envs if e.event_type == event_type]

    async def get(self, path: str, role: str = "admin", **kw: Any) -> httpx.Response:
        """GET with a staff token."""
        headers = {**self.token(role, **kw.pop("who", {})), **kw.pop("headers", {})}
        return await self.client.get(path, headers=headers, **kw)

    async def visit(
        self,
        case_id: str,
        honoured: bool = True,
        role: str = "admin",
        who: dict[str, Any] | None = None,
        **body: Any,
    ) -> httpx.Response:
        """POST a visit."""
        payload = {"method": "phone", "honoured": honoured, "satisfaction": 5, **body}
        r = await self.client.post(
            f"/v1/cases/{case_id}/visits", json=payload, headers=self.token(role, **(who or {}))
        )
        await self.settle()
        return r


def trail_event(
    case_id: str,
    to: str,
    frm: str | None = None,
    *,
    action: str | None = None,
    at: datetime | None = None,
    actor: str = "system:test",
    reason: str = "",
    details: dict[str, Any] | None = None,
    producer: str = "test",
) -> Envelope:
    """A trail.appended envelope."""
    return REGISTRY.event(
        TrailAppended(
            case_id=case_id,
            at=at or T0,
            actor=actor,
            action=action or to,
            from_status=frm,
            to_status=to,
            reason=reason,
            details=details or {},
        ),
        event_type="trail.appended",
        producer=producer,
        case_id=case_id,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + timedelta(days=1))


@pytest.fixture
async def ledger(
    tmp_path: Path, memory_bus: InMemoryBus, clock: ManualClock
) -> AsyncIterator[Ledger]:
    settings = FollowupSettings(bus="memory", database_url=f"sqlite+aiosqlite:///{tmp_path}/f.db")
    app = create_app(settings, bus=memory_bus, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://followup") as client:
            yield Ledger(app, memory_bus, clock, client)
