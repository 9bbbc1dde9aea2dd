"""Alembic environment of the triage service."""

from services.triage.repository import metadata
from shared.migrations_env import run_env

run_env(metadata)
