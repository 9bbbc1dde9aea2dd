"""Follow-up service: create_app() builds it; the lifespan starts and stops everything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.followup import api, consumers, visits_api
from services.followup.domain import Clock, SystemClock
from services.followup.handlers import FollowupHandlers, LedgerHandlers
from services.followup.repository import TABLES
from services.followup.settings import FollowupSettings
from shared.bus import Bus
from shared.logs import configure_logging
from shared.runtime import Runtime
from shared.web import BodyLimitMiddleware, health_router, install_error_handlers

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: FollowupSettings | None = None, bus: Bus | None = None, clock: Clock | None = None
) -> FastAPI:
    """Build the follow-up app; nothing connects until the lifespan starts."""
    settings = settings or FollowupSettings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        rt = Runtime(settings, TABLES, MIGRATIONS, bus=bus)
        ledger = LedgerHandlers(rt.delivery)
        followup = FollowupHandlers(
            rt.delivery, rt.topics, rt.cipher, clock, settings.visit_offsets_days
        )
        consumers.register(rt, ledger, followup)
        app.state.runtime, app.state.followup = rt, followup
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(title="Fengqiao follow-up and case ledger", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=64 * 1024)
    install_error_handlers(app)

    async def checks() -> dict[str, bool]:
        result: dict[str, bool] = await app.state.runtime.checks()
        return result

    app.include_router(health_router(checks))
    app.include_router(api.router)
    app.include_router(visits_api.router)
    return app
