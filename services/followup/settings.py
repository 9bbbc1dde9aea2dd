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
