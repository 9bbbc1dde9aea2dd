"""Early warning (风险研判, DOMAIN.md §8): rules, counters, engine, routes."""

from __future__ import annotations

from dataclasses import fields

from services.followup.settings import FollowupSettings
from services.followup.warnings.domain import Thresholds


def thresholds_of(settings: FollowupSettings) -> Thresholds:
    """The thresholds a deployment configured (FOLLOWUP_WARN_*), §8 defaults otherwise."""
    return Thresholds(**{f.name: getattr(settings, f"warn_{f.name}") for f in fields(Thresholds)})
