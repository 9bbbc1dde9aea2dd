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
from shared.web import service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: TriageSettings | None = None, bus: Bus | None = None) -> FastAPI:
    """Build the triage app; nothing connects until the lifespan starts."""
    settings = settings or TriageSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, service=settings.service_name)
        rules = RulesStore(settings.rules_path)
        rt = Runtime(settings, TABLES, MIGRATIONS, bus=bus)
        consumers.register(rt, TriageHandlers(rt.delivery, rt.topics, rules))
        app.state.runtime, app.state.rules = rt, rules
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = service_app("Fengqiao triage", settings, lifespan, max_body_bytes=256 * 1024)
    app.include_router(api.router)
    return app
