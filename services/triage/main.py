"""Triage service: create_app() builds it; the lifespan starts and stops everything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.triage import api, consumers
from services.triage.handlers import TriageHandlers
from services.triage.repository import TABLES
from services.triage.rules import RulesStore
from services.triage.settings import TriageSettings
from shared.bus import Bus
from shared.logs import configure_logging
from shared.runtime import Runtime
from shared.web import BodyLimitMiddleware, health_router, install_error_handlers

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: TriageSettings | None = None, bus: Bus | None = None) -> FastAPI:
    """Build the triage app; nothing connects until the lifespan starts."""
    settings = settings or TriageSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        rules = RulesStore(settings.rules_path)
        rt = Runtime(settings, TABLES, MIGRATIONS, bus=bus)
        consumers.register(rt, TriageHandlers(rt.delivery, rt.topics, rules))
        app.state.runtime, app.state.rules = rt, rules
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(title="Fengqiao triage", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=256 * 1024)
    install_error_handlers(app)

    async def checks() -> dict[str, bool]:
        result: dict[str, bool] = await app.state.runtime.checks()
        return result

    app.include_router(health_router(checks))
    app.include_router(api.router)
    return app
