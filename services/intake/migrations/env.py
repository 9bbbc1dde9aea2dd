"""Alembic environment of the intake service."""

from services.intake.repository import metadata
from shared.migrations_env import run_env

run_env(metadata)
