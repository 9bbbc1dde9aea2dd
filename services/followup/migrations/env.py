"""Alembic environment of the followup service."""

from services.followup.repository import metadata
from shared.migrations_env import run_env

run_env(metadata)
