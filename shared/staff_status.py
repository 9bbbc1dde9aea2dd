"""Revocation of staff tokens: each service's view of who is still active, and at which version.

Staff live in mediation's database. When a member of staff is deactivated or moved (another
organisation, tier or role) mediation bumps their token version and publishes `staff.changed`
on the `staff.changed` topic, in the same transaction. Every service (mediation too) consumes it
into its own `staff_status` table; on each request the bearer token's version is checked against
that row, cached at most `staff_status_ttl_s` (≤ 60 s) per instance. A token of an inactive
member, or one issued before the last bump, answers 401 within a minute of the change.
A subject the table has never heard of has not changed since it was created: its token stands.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.auth import StaffPrincipal
from shared.contracts import REGISTRY
from shared.events import Envelope


class StaffChanged(BaseModel):
    """staff.changed: a member of staff was deactivated, re-activated or moved."""

    staff_id: str
    active: bool
    token_version: int
    changed_at: datetime


REGISTRY.register("staff.changed", StaffChanged)


class StaffStatusCache:
    """Whether a token's subject is still active at the token's version (cached briefly)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        table: Any,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions, self.table, self.ttl_s, self.clock = sessions, table, ttl_s, clock
        self._cache: dict[str, tuple[float, bool, int] | tuple[float, None, None]] = {}

    async def allows(self, p: StaffPrincipal) -> bool:
        """False when the subject was deactivated, or moved after the token was issued."""
        now = self.clock()
        hit = self._cache.get(p.subject)
        if hit is None or now - hit[0] >= self.ttl_s:
            async with self.sessions() as session:
                row = await session.get(self.table, p.subject)
            hit = (now, row.active, row.token_version) if row else (now, None, None)
            self._cache[p.subject] = hit
        _, active, version = hit
        if active is None or version is None:
            return True
        return active and p.version >= version

    async def staff_changed(self, _env: Envelope, ev: StaffChanged) -> None:
        """Keep the newest status of a member of staff (older or repeated events change nothing)."""
        async with self.sessions() as session, session.begin():
            row = await session.get(self.table, ev.staff_id)
            if row is None:
                row = self.table(staff_id=ev.staff_id)
            elif row.token_version > ev.token_version:
                return
            row.active, row.token_version, row.changed_at = (
                ev.active,
                ev.token_version,
                ev.changed_at,
            )
            session.add(row)
        self._cache.pop(ev.staff_id, None)
