"""Integrators: creating them (key shown once, stored hashed), authenticating, rate limiting."""

from __future__ import annotations

import asyncio
import contextlib
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
    same ones: a key's calls, and a client address's failed keys. To spare a request its three
    transactions, an instance keeps a little in memory, each part bounded:
    - a key that authenticated is remembered for `auth_cache_s` (a deleted or deactivated
      integrator is refused at most that much later);
    - a key's bucket is drawn on in leases of up to `lease` tokens, spent locally for at most
      `lease_s` (taken from the shared bucket, so instances together never exceed it; an unspent
      lease is dropped);
    - a client address found not blocked is not looked up again for `lease_s`, unless a failed
      key from it is seen here first (each failed key is still counted in the shared bucket
      at once).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        rate_per_s: float,
        burst: int,
        failed_per_s: float = 0.2,
        failed_burst: int = 10,
        clock: Callable[[], float] = time.time,
        auth_cache_s: float = 5.0,
        lease_s: float = 1.0,
    ) -> None:
        self.sessions, self.rate, self.burst = sessions, rate_per_s, burst
        self.failed_rate, self.failed_burst, self.clock = failed_per_s, failed_burst, clock
        self.auth_cache_s, self.lease_s = auth_cache_s, lease_s
        # a lease is at most an eighth of the burst and a second's worth of the rate
        self.lease = max(1, min(burst // 8, int(rate_per_s * lease_s), 256))
        self._known: dict[str, tuple[float, Integrator]] = {}  # key hash → (until, integrator)
        self._leases: dict[str, tuple[float, int]] = {}  # bucket key → (until, tokens left)
        self._clear: dict[str, float] = {}  # client address → not blocked until
        self._refills: dict[str, asyncio.Lock] = {}
        self._lookups: dict[str, asyncio.Lock] = {}  # client address → its one lookup

    async def authenticate(self, api_key: str | None) -> Integrator | None:
        """The integrator holding this key, or None."""
        if not api_key or len(api_key) > 200:
            return None
        key_hash, now = hash_api_key(api_key), self.clock()
        known = self._known.get(key_hash)
        if known is not None and known[0] > now:
            return known[1]
        # a key that works is looked up once when its entry expires, not by every waiting call;
        # unknown keys are not remembered (nor locked on: a guesser's keys are all different)
        lock = self._lookups.get(key_hash) if known is not None else None
        if lock is None and known is not None:
            lock = self._lookups[key_hash] = asyncio.Lock()
        async with lock if lock is not None else contextlib.nullcontext():
            known = self._known.get(key_hash)
            if known is not None and known[0] > self.clock():
                return known[1]
            async with self.sessions() as session:
                integ = await integrator_by_key_hash(session, key_hash)
            if integ is not None:
                if len(self._known) >= 10_000:
                    self._known.clear()
                self._known[key_hash] = (now + self.auth_cache_s, integ)
            else:
                self._known.pop(key_hash, None)
        return integ

    async def throttle(self, integrator_id: str) -> float:
        """0 when the call may proceed, else seconds to wait (token bucket per key)."""
        key = f"key:{integrator_id}"
        if self._spend(key):
            return 0.0
        # one refill per key at a time: the calls waiting behind it spend the new lease
        lock = self._refills.setdefault(key, asyncio.Lock())
        async with lock:
            if self._spend(key):
                return 0.0
            now = self.clock()
            wait, granted = await self._take(key, self.rate, self.burst, cost=self.lease)
            if granted:
                self._leases[key] = (now + self.lease_s, granted - 1)
            return wait

    def _spend(self, key: str) -> bool:
        until, left = self._leases.get(key, (0.0, 0))
        if left >= 1 and until > self.clock():
            self._leases[key] = (until, left - 1)
            return True
        return False

    async def failed(self, client: str) -> float:
        """Count a failed key from a client address; >0: it must wait that long (429)."""
        self._clear.pop(client, None)
        wait, _ = await self._take(f"fail:{client}", self.failed_rate, self.failed_burst)
        return wait

    async def blocked(self, client: str) -> float:
        """>0 when a client address spent its failed-key allowance: refused before any lookup."""
        if self._clear.get(client, 0.0) > self.clock():
            return 0.0
        # one lookup per address at a time: the calls arriving meanwhile wait for its answer
        lock = self._lookups.setdefault(client, asyncio.Lock())
        async with lock:
            now = self.clock()
            if self._clear.get(client, 0.0) > now:
                return 0.0
            key = f"fail:{client}"
            wait, _ = await self._take(key, self.failed_rate, self.failed_burst, cost=0)
            if wait == 0:
                if len(self._clear) >= 10_000:
                    self._clear.clear()
                self._clear[client] = now + self.lease_s
        if not lock.locked() and len(self._lookups) >= 10_000:
            self._lookups.clear()
        return wait

    async def _take(self, key: str, rate: float, burst: int, cost: int = 1) -> tuple[float, int]:
        try:
            return await self._take_once(key, rate, burst, cost)
        except IntegrityError:  # two first calls created the bucket at once: it exists now
            return await self._take_once(key, rate, burst, cost)

    async def _take_once(self, key: str, rate: float, burst: int, cost: int) -> tuple[float, int]:
        """Take up to `cost` whole tokens (at least one, else the wait); cost 0 only looks."""
        now = self.clock()
        async with self.sessions() as session, session.begin():
            stmt = select(RateBucket).where(RateBucket.key == key).with_for_update()
            row = (await session.exec(stmt)).first()
            if row is None:
                row = RateBucket(key=key, tokens=float(burst), updated=now)
            bucket = TokenBucket(rate, burst, row.tokens, row.updated)
            if cost == 0:
                bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
                return (0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / rate), 0
            wait = bucket.take(now)
            granted = 0 if wait > 0 else 1 + min(cost - 1, int(bucket.tokens))
            bucket.tokens -= granted - 1 if granted else 0
            row.tokens, row.updated = bucket.tokens, bucket.updated
            session.add(row)
        return wait, granted
