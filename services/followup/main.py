"""Follow-up service: create_app() builds it; the lifespan starts and stops everything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.followup import api, consumers, visits_api
from services.followup.handlers import FollowupHandlers, LedgerHandlers
from services.followup.places import api as places_api
from services.followup.places.repository import PlacesHook
from services.followup.reporting import api as reporting_api
from services.followup.reporting.repository import StatsAggregates
from services.followup.repository import TABLES
from services.followup.settings import FollowupSettings
from services.followup.warnings import api as warnings_api
from services.followup.warnings import thresholds_of
from services.followup.warnings.engine import WarningEngine, run_scanner
from shared import periodic
from shared.bus import Bus
from shared.clock import Clock, SystemClock
from shared.logs import configure_logging
from shared.runtime import Runtime
from shared.web import service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: FollowupSettings | None = None, bus: Bus | None = None, clock: Clock | None = None
) -> FastAPI:
    """Build the follow-up app; nothing connects until the lifespan starts."""
    settings = settings or FollowupSettings()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, service=settings.service_name)
        rt = Runtime(settings, TABLES, MIGRATIONS, bus=bus)
        warnings = WarningEngine(rt.topics, thresholds_of(settings))
        ledger = LedgerHandlers(
            rt.delivery, hooks=[StatsAggregates(), PlacesHook(rt.cipher), warnings]
        )
        followup = FollowupHandlers(
            rt.delivery, rt.topics, rt.cipher, clock, settings.visit_offsets_days
        )
        consumers.register(rt, ledger, followup)
        app.state.runtime, app.state.followup = rt, followup
        app.state.warnings, app.state.clock = warnings, clock
        await rt.start()
        scanner = None
        if settings.warn_scan_interval_s > 0:
            scanner = asyncio.create_task(
                run_scanner(warnings, rt.delivery, clock, settings.warn_scan_interval_s)
            )
        try:
            yield
        finally:
            await periodic.cancel(scanner)
            await rt.stop()

    app = service_app(
        "Fengqiao follow-up and case ledger", settings, lifespan, max_body_bytes=64 * 1024
    )
    app.include_router(api.router)
    app.include_router(visits_api.router)
    app.include_router(warnings_api.router)
    app.include_router(reporting_api.router)
    app.include_router(places_api.router)
    return app
