"""Demo integrators for `make run`: one per source, keys printed once by the runner."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.intake.integrators import create_integrator
from services.intake.main import MIGRATIONS
from services.intake.settings import IntakeSettings
from shared.db import make_engine, migrate
from shared.pii import PiiCipher
from shared.topics import SOURCES


async def seed_demo(settings: IntakeSettings) -> dict[str, dict[str, str]]:
    """Migrate the database and (re)create the integrators demo-110, demo-12345, demo-grid."""
    engine = make_engine(settings.database_url)
    try:
        await migrate(engine, MIGRATIONS)
        sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        cipher = PiiCipher(settings.pii_key, settings.pii_previous_keys)
        out: dict[str, dict[str, str]] = {}
        for source in SOURCES:
            new = await create_integrator(
                sessions, cipher, name=f"demo-{source}", source=source, replace_same_name=True
            )
            out[source] = {"api_key": new.api_key, "integrator_id": new.id}
        return out
    finally:
        await engine.dispose()
