"""Follow-up settings (env prefix FOLLOWUP_, then FENGQIAO_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class FollowupSettings(ServiceSettings):
    """Settings of the follow-up service (visits and the case ledger)."""

    model_config = SettingsConfigDict(env_prefix="FOLLOWUP_", extra="ignore")

    service_name: str = "followup"
    http_port: int = 8004
    visit_offsets_days: list[int] = Field(default_factory=lambda: [3, 30])
    max_page_size: int = 500
    default_page_size: int = 100
    # early warning (DOMAIN.md §8): thresholds with the defaults of §8, and the scan interval
    # of the warnings that time alone clears (0 = no background scan; tests call it themselves)
    warn_repeat_party_cases: int = 3
    warn_repeat_party_days: int = 90
    warn_after_agreement_days: int = 30
    warn_rising_min_cases: int = 5
    warn_rising_factor: float = 2.0
    warn_rising_days: int = 7
    warn_rising_baseline_weeks: int = 8
    warn_group_open_labour: int = 3
    warn_group_days: int = 30
    warn_group_parties: int = 10
    warn_soon_due_sign_for_fraction: float = 0.25
    warn_soon_due_mediation_days: float = 3.0
    warn_scan_interval_s: float = 60.0
