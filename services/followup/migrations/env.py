"""Alembic environment of the followup service."""

import services.followup.places.repository  # noqa: F401  (registers the places table)
import services.followup.reporting.repository  # noqa: F401  (registers the aggregate table)
import services.followup.warnings.repository  # noqa: F401  (registers the warning tables)
from services.followup.repository import metadata
from shared.migrations_env import run_env

run_env(metadata)
