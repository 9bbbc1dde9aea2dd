"""Alembic environment of the mediation service."""

from services.mediation.repository import metadata
from shared.migrations_env import run_env

run_env(metadata)
