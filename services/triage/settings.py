"""Triage settings (env prefix TRIAGE_, then FENGQIAO_)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class TriageSettings(ServiceSettings):
    """Settings of the triage service."""

    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore")

    service_name: str = "triage"
    http_port: int = 8002
    rules_path: Path | None = None
