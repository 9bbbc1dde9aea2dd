"""Integrators: creating them (key shown once, stored hashed), authenticating, rate limiting."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.domain import TokenBucket
from services.intake.repository import Integrator, integrator_by_key_hash
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
    """Who is calling (by X-API-Key) and whether they may call again now."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], rate_per_s: float, burst: int
    ) -> None:
        self.sessions, self.rate, self.burst = sessions, rate_per_s, burst
        self._buckets: dict[str, TokenBucket] = {}

    async def authenticate(self, api_key: str | None) -> Integrator | None:
        """The integrator holding this key, or None."""
        if not api_key or len(api_key) > 200:
            return None
        async with self.sessions() as session:
            return await integrator_by_key_hash(session, hash_api_key(api_key))

    def throttle(self, integrator_id: str) -> float:
        """0 when the call may proceed, else seconds to wait (token bucket per key)."""
        bucket = self._buckets.setdefault(integrator_id, TokenBucket(self.rate, self.burst))
        return bucket.take(time.monotonic())
