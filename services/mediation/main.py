"""Mediation service: create_app() builds it; the lifespan starts and stops everything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.mediation import admin_api, api, consumers
from services.mediation.actions import CaseActions
from services.mediation.assignment import Context
from services.mediation.channels import ChannelRegistry, default_channels
from services.mediation.handlers import MediationHandlers
from services.mediation.repository import TABLES
from services.mediation.settings import MediationSettings
from services.mediation.supervision import start_scanner
from shared import periodic
from shared.bus import Bus
from shared.clock import Clock, SystemClock
from shared.logs import configure_logging
from shared.runtime import Runtime
from shared.web import service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: MediationSettings | None = None,
    bus: Bus | None = None,
    clock: Clock | None = None,
    channels: ChannelRegistry | None = None,
) -> FastAPI:
    """Build the mediation app; nothing connects until the lifespan starts."""
    settings = settings or MediationSettings()
    clock = clock or SystemClock()
    channels = channels or default_channels()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, service=settings.service_name)
        rt = Runtime(settings, TABLES, MIGRATIONS, bus=bus)
        ctx = Context(settings, rt.delivery, rt.topics, clock, channels, rt.cipher)
        consumers.register(rt, MediationHandlers(ctx))
        app.state.runtime, app.state.ctx, app.state.actions = rt, ctx, CaseActions(ctx)
        await rt.start()
        scanner = (
            start_scanner(ctx, settings.scan_interval_s) if settings.scan_interval_s > 0 else None
        )
        try:
            yield
        finally:
            await periodic.cancel(scanner)
            await rt.stop()

    app = service_app("Fengqiao mediation", settings, lifespan, max_body_bytes=256 * 1024)
    app.include_router(api.router)
    app.include_router(admin_api.router)
    return app
