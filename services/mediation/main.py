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
from services.mediation.domain import Clock, SystemClock
from services.mediation.handlers import MediationHandlers
from services.mediation.repository import TABLES
from services.mediation.settings import MediationSettings
from services.mediation.supervision import start_scanner, stop_scanner
from shared.bus import Bus
from shared.logs import configure_logging
from shared.runtime import Runtime
from shared.web import BodyLimitMiddleware, health_router, install_error_handlers

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
        configure_logging(settings.log_level)
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
            await stop_scanner(scanner)
            await rt.stop()

    app = FastAPI(title="Fengqiao mediation", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=256 * 1024)
    install_error_handlers(app)

    async def checks() -> dict[str, bool]:
        result: dict[str, bool] = await app.state.runtime.checks()
        return result

    app.include_router(health_router(checks))
    app.include_router(api.router)
    app.include_router(admin_api.router)
    return app
