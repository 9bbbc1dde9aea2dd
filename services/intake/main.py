"""Intake service: create_app() builds it; the lifespan starts and stops everything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import case, func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake import api, consumers, open311
from services.intake.callbacks import Resolver
from services.intake.handlers import IntakeHandlers
from services.intake.integrators import IntegratorGate
from services.intake.receipts import ReceiptWriter
from services.intake.repository import TABLES, WebhookDelivery
from services.intake.settings import IntakeSettings
from services.intake.webhooks import WebhookSender
from shared import metrics
from shared.bus import Bus
from shared.logs import configure_logging
from shared.runtime import Runtime
from shared.web import service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: IntakeSettings | None = None,
    bus: Bus | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    configure_logs: bool = True,
    webhook_resolver: Resolver | None = None,
) -> FastAPI:
    """Build the intake app; nothing connects until the lifespan starts."""
    settings = settings or IntakeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if configure_logs:
            configure_logging(settings.log_level, service=settings.service_name)
        rt = Runtime(settings, TABLES, MIGRATIONS, bus=bus)
        handlers = IntakeHandlers(rt.delivery, rt.topics, rt.cipher, settings.merge_window_hours)
        consumers.register(rt, handlers, settings)
        sender = WebhookSender(
            rt.sessions,
            rt.cipher,
            settings,
            handlers.webhooks_due,
            transport=webhook_transport,
            resolver=webhook_resolver,
        )
        app.state.runtime, app.state.handlers, app.state.webhooks = rt, handlers, sender
        app.state.receipts = ReceiptWriter(handlers)
        app.state.gate = IntegratorGate(
            rt.sessions,
            settings.rate_limit_per_s,
            settings.rate_limit_burst,
            settings.failed_key_rate_per_s,
            settings.failed_key_burst,
        )
        await rt.start()
        sender.start()
        try:
            yield
        finally:
            await sender.stop()
            await rt.stop()

    app = service_app(
        "Fengqiao intake",
        settings,
        lifespan,
        max_body_bytes=settings.max_body_bytes,
        body_limits={"/v1/reports:batch": settings.max_batch_body_bytes},
        key_paths=("/v1/reports", "/open311/"),
        error_forms={"/open311/": open311.georeport_body},
    )
    app.include_router(api.router)
    app.include_router(open311.router)
    open311.install_not_found(app)

    async def sample_webhooks() -> None:
        rt = getattr(app.state, "runtime", None)
        if rt is not None:
            pending, failing = await webhook_counts(rt.sessions)
            metrics.WEBHOOKS_PENDING.labels(settings.service_name).set(pending)
            metrics.WEBHOOKS_FAILING.labels(settings.service_name).set(failing)

    app.state.metric_samplers.append(sample_webhooks)
    return app


async def webhook_counts(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    """Undelivered callbacks, and how many of them have failed at least once (for /metrics)."""
    failed = func.coalesce(func.sum(case((col(WebhookDelivery.attempts) > 0, 1), else_=0)), 0)
    async with sessions() as session:
        pending, failing = (
            await session.exec(
                select(func.count(), failed).where(col(WebhookDelivery.delivered_at).is_(None))
            )
        ).one()
    return int(pending or 0), int(failing or 0)
