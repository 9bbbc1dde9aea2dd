"""Console settings (env prefix CONSOLE_, then FENGQIAO_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import RUN_DIR, ServiceSettings

DEV_CSRF_SECRET = "dev-only-console-csrf-secret-0123456789"


class ConsoleSettings(ServiceSettings):
    """Where the four services answer, and how the console keeps a session.

    The console has no database and no broker: `database_url` and `kafka_bootstrap` are
    inherited and unused. `jwt_public_key` checks the tokens people sign in with;
    `csrf_secret` signs form tokens (required, 32+ characters, outside dev mode).
    """

    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore")

    service_name: str = "console"
    http_port: int = 8005
    intake_url: str = "http://127.0.0.1:8001"
    triage_url: str = "http://127.0.0.1:8002"
    mediation_url: str = "http://127.0.0.1:8003"
    followup_url: str = "http://127.0.0.1:8004"
    timeout_s: float = 15.0
    # dev mode only: the demo staff to pick from at sign-in (written by `make run`)
    demo_credentials: Path = RUN_DIR / "demo-credentials.json"
    timezone: str = "Asia/Shanghai"
    poll_seconds: int = 10
    secure_cookies: bool = False
    csrf_secret: str = ""

    @model_validator(mode="after")
    def _csrf_secret(self) -> ConsoleSettings:
        if self.dev_mode:
            self.csrf_secret = self.csrf_secret or DEV_CSRF_SECRET
        elif len(self.csrf_secret) < 32 or self.csrf_secret == DEV_CSRF_SECRET:
            raise ValueError(
                "csrf_secret: set CONSOLE_CSRF_SECRET (or FENGQIAO_CSRF_SECRET) to 32+ random "
                "characters outside dev mode"
            )
        return self
