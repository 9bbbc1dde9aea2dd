"""Intake settings (env prefix INTAKE_, then FENGQIAO_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Settings of the intake service."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore")

    service_name: str = "intake"
    http_port: int = 8001
    # input limits
    max_text_chars: int = 10_000
    max_body_bytes: int = 256 * 1024
    max_batch_items: int = 500
    max_batch_body_bytes: int = 16 * 1024 * 1024
    max_future_skew_s: int = 600
    # integrator rate limit: a token bucket per API key
    rate_limit_per_s: float = 20.0
    rate_limit_burst: int = 100
    # failed keys, per client address (shared by instances): a key guesser gets 429s
    failed_key_rate_per_s: float = 0.2
    failed_key_burst: int = 10
    # 并单: merge window
    merge_window_hours: int = 72
    # status webhooks: exponential backoff base * 2**(attempt-1), capped
    webhook_backoff_base_s: float = 2.0
    webhook_backoff_max_s: float = 3600.0
    webhook_timeout_s: float = 10.0
    webhook_poll_s: float = 1.0
    webhook_batch: int = 50
