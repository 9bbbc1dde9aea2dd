"""Signed status callbacks to integrators, retried with exponential backoff until a 2xx."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.callbacks import (
    Resolver,
    UnsafeCallback,
    UnsafeCallbackError,
    callback_client,
    check_callback_url,
)
from services.intake.domain import backoff_s, sign_webhook
from services.intake.repository import Integrator, WebhookDelivery, claim_due_webhooks
from services.intake.settings import IntakeSettings
from shared.events import utcnow
from shared.pii import PiiCipher

log = logging.getLogger("fengqiao.intake.webhooks")


class WebhookSender:
    """Sends due deliveries; a failure schedules the next try base·2^(n−1) seconds later."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: PiiCipher,
        settings: IntakeSettings,
        wakeup: asyncio.Event,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.sessions, self.cipher, self.settings = sessions, cipher, settings
        self.wakeup, self.transport, self.resolver = wakeup, transport, resolver
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._attempted = False  # whether the last poll found deliveries due (sent or not)

    async def send_due(self, now: datetime | None = None) -> int:
        """Claim every due delivery, try each once; return how many were acknowledged.

        Claiming is one transaction (see `claim_due_webhooks`), so two intake instances on one
        PostgreSQL database never send the same delivery; the claim lasts long enough for the
        whole batch to time out one by one.
        """
        now = now or utcnow()
        batch = self.settings.webhook_batch
        claim_until = now + timedelta(seconds=self.settings.webhook_timeout_s * (batch + 1))
        async with self.sessions() as session, session.begin():
            rows = await claim_due_webhooks(session, now, batch, claim_until)
            integrators = {
                r.integrator_id: await session.get(Integrator, r.integrator_id) for r in rows
            }
        self._attempted = bool(rows)
        if not rows:
            return 0
        if self._client is None:
            self._client = callback_client(
                self.settings.webhook_timeout_s, self.transport, self.resolver
            )
        acked = 0
        for row in rows:
            integ = integrators.get(row.integrator_id)
            status = await self._send(self._client, row, integ, now)
            ok = status is not None and 200 <= status < 300
            acked += ok
            await self._record(row.id, status, ok, now)
        return acked

    async def _send(
        self,
        client: httpx.AsyncClient,
        row: WebhookDelivery,
        integ: Integrator | None,
        now: datetime,
    ) -> int | None:
        if integ is None or not integ.callback_url:
            return None
        try:
            check_callback_url(integ.callback_url, dev_mode=self.settings.dev_mode)
        except UnsafeCallback as exc:  # registered before the rules tightened: never sent
            log.warning("webhook refused", extra={"delivery": row.id, "reason": str(exc)})
            return None
        ts = str(int(now.timestamp()))
        secret = self.cipher.decrypt(integ.webhook_secret_enc) or ""
        headers = {
            "Content-Type": "application/json",
            "X-Fengqiao-Timestamp": ts,
            "X-Fengqiao-Signature": sign_webhook(secret, ts, row.body),
            "X-Fengqiao-Delivery": str(row.id),
        }
        try:
            resp = await client.post(integ.callback_url, content=row.body, headers=headers)
            return resp.status_code
        except UnsafeCallbackError:
            log.warning(
                "webhook refused",
                extra={
                    "delivery": row.id,
                    "reason": "callback host resolves to an internal address",
                },
            )
            return None
        except httpx.HTTPError as exc:
            log.warning(
                "webhook delivery failed", extra={"delivery": row.id, "error": type(exc).__name__}
            )
            return None

    async def _record(
        self, delivery_id: int | None, status: int | None, ok: bool, now: datetime
    ) -> None:
        async with self.sessions() as session, session.begin():
            row = await session.get(WebhookDelivery, delivery_id)
            if row is None:
                return
            row.attempts += 1
            row.last_status = status
            if ok:
                row.delivered_at = now
            else:
                delay = backoff_s(
                    row.attempts,
                    self.settings.webhook_backoff_base_s,
                    self.settings.webhook_backoff_max_s,
                )
                row.next_attempt_at = now + timedelta(seconds=delay)
            session.add(row)

    async def run(self) -> None:
        """Loop until cancelled: send what is due, then wait for a wake-up or the interval.

        Polls that find nothing due wait longer each time, up to 8 × `webhook_poll_s` (the
        callbacks this process queues wake it at once; the poll is for retries and for other
        instances' rows); a poll that sends something, or a wake-up, starts again from the
        base interval.
        """
        base = self.settings.webhook_poll_s
        wait = base
        while True:
            # clear before sending: a callback queued meanwhile wakes the next round at once
            self.wakeup.clear()
            sent = -1
            try:
                sent = await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("webhook loop failed; will retry", extra={"error": type(exc).__name__})
            wait = min(wait * 2, base * 8) if sent == 0 and not self._attempted else base
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel of stop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.wakeup.wait()
                    wait = base

    def start(self) -> None:
        """Start the background loop."""
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Stop the loop (undelivered callbacks stay in the table for the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
