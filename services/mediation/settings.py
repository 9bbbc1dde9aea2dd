"""Mediation settings (env prefix MEDIATION_, then FENGQIAO_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class MediationSettings(ServiceSettings):
    """Settings of the mediation service."""

    model_config = SettingsConfigDict(env_prefix="MEDIATION_", extra="ignore")

    service_name: str = "mediation"
    http_port: int = 8003
    timezone: str = "Asia/Shanghai"
    day_shift_start_hour: int = 8  # 坐班 08:00–18:00 local time; night on-call outside it
    day_shift_end_hour: int = 18
    scan_interval_s: float = 60.0  # how often the overdue scanner runs
    reopen_mediation_days: int = 15  # a reopened case gets this long to settle again
    court_extension_days: int = 30  # 诉前调解 may be extended once by this much (DOMAIN.md §5)
    county_code: str = "522731"
    county_name: str = "南溪县"
