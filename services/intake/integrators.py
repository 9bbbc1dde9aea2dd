"""Integrators: creating them (key shown once, stored hashed), authenticating, rate limiting."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.domain import TokenBucket
from services.intake.repository import Integrator, RateBucket, integrator_by_key_hash
from shared.auth import hash_api_key, new_api_key
from shared.events import new_id, utcnow
from shared.pii import PiiCipher


@dataclass(frozen=True)
class NewIntegrator:
    """A freshly created integrator with its secrets, shown once."""

    id: str
    name: str
    source: str
    api_key: str
    callback_url: str | None
    webhook_secret: str | None


async def create_integrator(
    sessions: async_sessionmaker[AsyncSession],
    cipher: PiiCipher,
    *,
    name: str,
    source: str,
    callback_url: str | None = None,
    webhook_secret: str | None = None,
    replace_same_name: bool = False,
) -> NewIntegrator:
    """Register an integrator bound to a source; a callback gets a webhook secret."""
    key = new_api_key()
    if callback_url and not webhook_secret:
        webhook_secret = secrets.token_urlsafe(32)
    row = Integrator(
        id=new_id(),
        name=name,
        source=source,
        api_key_hash=hash_api_key(key),
        callback_url=callback_url,
        webhook_secret_enc=cipher.encrypt(webhook_secret) if webhook_secret else None,
        created_at=utcnow(),
    )
    async with sessions() as session, session.begin():
        if replace_same_name:
            await session.exec(
                delete(Integrator).where(
                    col(Integrator.name) == name, col(Integrator.source) == source
                )
            )
        session.add(row)
    return NewIntegrator(row.id, name, source, key, callback_url, webhook_secret)


class IntegratorGate:
    """Who is calling (by X-API-Key) and whether they may call again now.

    The buckets live in the database (`rate_buckets`), so every intake instance draws on the
    same ones: a key's calls, and a client address's failed keys."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        rate_per_s: float,
        burst: int,
        failed_per_s: float = 0.2,
        failed_burst: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions, self.rate, self.burst = sessions, rate_per_s, burst
        self.failed_rate, self.failed_burst, self.clock = failed_per_s, failed_burst, clock

    async def authenticate(self, api_key: str | None) -> Integrator | None:
        """The integrator holding this key, or None."""
        if not api_key or len(api_key) > 200:
            return None
        async with self.sessions() as session:
            return await integrator_by_key_hash(session, hash_api_key(api_key))

    async def throttle(self, integrator_id: str) -> float:
        """0 when the call may proceed, else seconds to wait (token bucket per key)."""
        return await self._take(f"key:{integrator_id}", self.rate, self.burst)

    async def failed(self, client: str) -> float:
        """Count a failed key from a client address; >0: it must wait that long (429)."""
        return await self._take(f"fail:{client}", self.failed_rate, self.failed_burst)

    async def blocked(self, client: str) -> float:
        """>0 when a client address spent its failed-key allowance: refused before any lookup."""
        return await self._take(f"fail:{client}", self.failed_rate, self.failed_burst, cost=0)

    async def _take(self, key: str, rate: float, burst: int, cost: int = 1) -> float:
        try:
            return await self._take_once(key, rate, burst, cost)
        except IntegrityError:  # two first calls created the bucket at once: it exists now
            return await self._take_once(key, rate, burst, cost)

    async def _take_once(self, key: str, rate: float, burst: int, cost: int) -> float:
        now = self.clock()
        async with self.sessions() as session, session.begin():
            stmt = select(RateBucket).where(RateBucket.key == key).with_for_update()
            row = (await session.exec(stmt)).first()
            if row is None:
                row = RateBucket(key=key, tokens=float(burst), updated=now)
            bucket = TokenBucket(rate, burst, row.tokens, row.updated)
            if cost == 0:
                bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
                return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / rate
            wait = bucket.take(now)
            row.tokens, row.updated = bucket.tokens, bucket.updated
            session.add(row)
        return wait
