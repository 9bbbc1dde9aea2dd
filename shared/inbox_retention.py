"""Inbox retention: what a consumer has handled is remembered as long as it can come again.

Each consumer's inbox row (consumer, event id) makes a redelivered event a no-op, and the
causal gate (shared.db.CausalGate) reads it as proof that a trail entry's causes were applied.
A record can be delivered again only while the broker still holds it: after a crash between a
batch's commit and its offset commit (seconds), or when a group whose committed offsets have
expired starts again from the earliest record a topic retains. Rows older than that can never
match again, yet without pruning the inbox grows by ~9 rows per case for ever.

Event ids are UUID v7 (shared.events.new_event_id): the first 12 hex digits are the time they
were made, so the rows made before a moment are one range of the primary key (consumer,
event id) for each consumer, deleted in chunks with a bounded write lock. A row goes only
when its id was made before the retention and it was handled before it too. The gate takes a
cause made before the retention as applied (CausalGate: a case lives for months, and its
next entry must not wait for a row pruned long ago). Ids made before event ids carried time
(UUID v4, random) tell no time: they are kept, and the gate looks them up as before.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import metrics
from shared.events import event_id_floor, utcnow
from shared.periodic import cancel, every

log = logging.getLogger("fengqiao.inbox")


class InboxPruner:
    """Deletes inbox rows older than `retention` every `interval_s` (the first pass shortly
    after start), `chunk` rows per transaction; never stops the service when a pass fails."""

    def __init__(
        self,
        engine: AsyncEngine,
        inbox: Any,
        service: str,
        retention: timedelta,
        interval_s: float = 3600.0,
        chunk: int = 2000,
        first_after_s: float = 60.0,
    ) -> None:
        self.engine, self.inbox, self.service = engine, inbox.__table__, service
        self.retention, self.interval_s, self.chunk = retention, interval_s, chunk
        self.first_after_s = first_after_s
        self._task: asyncio.Task[None] | None = None

    async def _consumers(self) -> list[str]:
        """The consumers with rows, one index seek each (a DISTINCT would read every row)."""
        c = self.inbox.c
        out: list[str] = []
        async with self.engine.connect() as conn:
            while True:
                q = select(func.min(c.consumer))
                if out:
                    q = q.where(c.consumer > out[-1])
                nxt = (await conn.execute(q)).scalar()
                if nxt is None:
                    return out
                out.append(nxt)

    async def prune_once(self, now: datetime | None = None) -> int:
        """Delete every row handled before now - retention; how many went."""
        cutoff = (now or utcnow()) - self.retention
        floor = event_id_floor(cutoff)
        c = self.inbox.c
        total = 0
        for consumer in await self._consumers():
            while True:
                old = (
                    select(c.consumer, c.event_id)
                    .where(
                        c.consumer == consumer,
                        c.event_id < floor,
                        func.substr(c.event_id, 13, 1) == "7",  # a v7 id: its time is known
                        c.processed_at < cutoff,
                    )
                    .limit(self.chunk)
                )
                async with self.engine.begin() as conn:
                    gone = (
                        await conn.execute(
                            delete(self.inbox).where(tuple_(c.consumer, c.event_id).in_(old))
                        )
                    ).rowcount
                total += gone
                if gone < self.chunk:
                    break
                await asyncio.sleep(0)  # the service's own work between chunks
        if total:
            metrics.INBOX_PRUNED.labels(self.service).inc(total)
            log.info("inbox pruned", extra={"rows": total, "retention_days": self.retention.days})
        return total

    def start(self) -> None:
        """Prune shortly after start, then every interval, until stopped."""
        self._task = asyncio.create_task(
            every(
                self.interval_s,
                self.prune_once,
                log,
                "inbox pruning failed; will retry",
                first_after_s=self.first_after_s,
            )
        )

    async def stop(self) -> None:
        """Cancel the task (a chunk's transaction rolls back; the next pass takes it again)."""
        await cancel(self._task)
        self._task = None
