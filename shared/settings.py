"""Settings base: one env prefix per service (INTAKE_, TRIAGE_, …) with FENGQIAO_ as fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from shared.pii import DEV_PII_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = REPO_ROOT / ".run"
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"


class ServiceSettings(BaseSettings):
    """Settings every service has; subclasses set `service_name` and their env prefix."""

    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "service"
    dev_mode: bool = True
    kafka_bootstrap: str = "127.0.0.1:9092"
    bus: Literal["kafka", "memory"] = "kafka"
    topic_prefix: str = ""
    group_prefix: str = ""
    database_url: str = ""
    pii_key: str = DEV_PII_KEY
    jwt_secret: str = DEV_JWT_SECRET
    jwt_audience: str = "fengqiao"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    max_attempts: int = 3
    relay_interval_s: float = 0.5
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> ServiceSettings:
        if not self.dev_mode:
            if self.pii_key == DEV_PII_KEY or len(self.pii_key) < 16:
                raise ValueError("pii_key: set a real key (16+ characters) outside dev mode")
            if self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32:
                raise ValueError("jwt_secret: set a real secret (32+ characters) outside dev mode")
        if not self.database_url:
            RUN_DIR.mkdir(parents=True, exist_ok=True)
            self.database_url = f"sqlite+aiosqlite:///{RUN_DIR / (self.service_name + '.db')}"
        return self

    def group(self, name: str) -> str:
        """Consumer group name, prefixed for isolated test runs."""
        return f"{self.group_prefix}{name}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Service prefix first, then the shared FENGQIAO_ prefix."""
        shared_env = EnvSettingsSource(settings_cls, env_prefix="FENGQIAO_")
        return init_settings, env_settings, shared_env, file_secret_settings


def settings_kwargs(**overrides: Any) -> dict[str, Any]:
    """Helper for tests: drop None overrides."""
    return {k: v for k, v in overrides.items() if v is not None}
