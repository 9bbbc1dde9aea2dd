"""Console settings (env prefix CONSOLE_, then FENGQIAO_)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from shared.settings import RUN_DIR, ServiceSettings


class ConsoleSettings(ServiceSettings):
    """Where the four services answer, and how the console keeps a session.

    The console has no database and no broker: `database_url` and `kafka_bootstrap` are
    inherited and unused. `jwt_secret` checks the tokens people paste and signs form tokens.
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
    # overview: how many ledger pages (500 cases each) the trend, areas and export read at most
    max_export_pages: int = 40
