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

from shared.auth import DEV_JWT_PRIVATE_KEY, DEV_JWT_PUBLIC_KEY, ISSUER, MAX_TOKEN_TTL
from shared.pii import DEV_PII_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = REPO_ROOT / ".run"
MIN_PII_KEY_CHARS = 32


class InsecureSettings(ValueError):
    """A secret is missing, a published default or too short outside dev mode."""


class BrokerSettings(BaseSettings):
    """How to reach the brokers and name topics and groups: every service's, and all that the
    operators' tools (`fengqiao deadletters`) need. FENGQIAO_ variables."""

    model_config = SettingsConfigDict(extra="ignore", env_prefix="FENGQIAO_")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # TLS / SASL towards the brokers, passed through to aiokafka
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    topic_prefix: str = ""
    group_prefix: str = ""

    def kafka_client_options(self) -> dict[str, Any]:
        """Security settings for every aiokafka client (producer, consumers, admin)."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(
                cafile=self.kafka_ssl_cafile or None,  # compose passes "" for unset
                certfile=self.kafka_ssl_certfile or None,
                keyfile=self.kafka_ssl_keyfile or None,
            )
        if self.kafka_security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username or None
            options["sasl_plain_password"] = self.kafka_sasl_password or None
        return options

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


class ServiceSettings(BrokerSettings):
    """Settings every service has; subclasses set `service_name` and their env prefix."""

    model_config = SettingsConfigDict(extra="ignore", env_prefix="")

    service_name: str = "service"
    # off unless asked for: `make run` and the tests turn it on; a deployment never does
    dev_mode: bool = False
    # topics this service creates: partitions, and replicas (0 = min(3, brokers in the cluster))
    kafka_partitions: int = 12
    # a consumer fetch with only a few records waits this long once for more (larger batches):
    # 20 ms gave 1.2x the full-speed cases/s and 0.76 instead of 0.63 for two instances on
    # PostgreSQL, at no latency a steady 100 reports/s could show (bench/README.md, session 14)
    kafka_consumer_linger_ms: float = 20.0
    # consumer offsets of kept work are committed at most this often (0: after every batch);
    # a crash reads up to this much again, which the inbox skips
    kafka_commit_interval_ms: float = 200.0
    # how long a consumer's inbox remembers a handled event: longer than the broker can deliver
    # it again (topic retention, expired group offsets); 0 = for ever (shared.inbox_retention)
    inbox_retention_days: float = 30.0
    inbox_prune_interval_s: float = 3600.0
    kafka_replication_factor: int = 0
    # false where a one-shot `fengqiao migrate` runs before the services (compose, Kubernetes)
    migrate_on_start: bool = True
    bus: Literal["kafka", "memory"] = "kafka"
    database_url: str = ""
    pii_key: str = ""
    # keys being rotated out: they still decrypt until `fengqiao pii rekey` has run
    pii_previous_keys: list[str] = []
    # Ed25519 PEM keys: every service verifies with the public key; only the issuer (mediation
    # and the `fengqiao token` command) is given the private key
    jwt_public_key: str = ""
    jwt_private_key: str = ""
    jwt_issuer: str = ISSUER
    jwt_audience: str = ""  # default: fengqiao-<service_name>
    token_ttl_s: int = int(MAX_TOKEN_TTL.total_seconds())
    staff_status_ttl_s: float = 30.0  # how long a staff member's active flag is cached
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    max_attempts: int = 3
    relay_interval_s: float = 0.5
    # a woken relay waits this long for more commits before it reads the outbox (one publish
    # for several commits: each costs a transaction and a produce round trip); 0 = at once
    relay_linger_ms: float = 0.0
    # SIGTERM to exit: relay and bus get this long in all, whatever the broker does (k8s and
    # compose kill after 10 s)
    stop_timeout_s: float = 5.0
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> ServiceSettings:
        if self.dev_mode:
            self.pii_key = self.pii_key or DEV_PII_KEY
            self.jwt_public_key = self.jwt_public_key or DEV_JWT_PUBLIC_KEY
            self.jwt_private_key = self.jwt_private_key or DEV_JWT_PRIVATE_KEY
        else:
            refuse_insecure(self)
        if not 60 <= self.token_ttl_s <= MAX_TOKEN_TTL.total_seconds():
            raise InsecureSettings("token_ttl_s: between 60 and 3600 seconds")
        if not 0 <= self.staff_status_ttl_s <= 60:
            raise InsecureSettings("staff_status_ttl_s: at most 60 seconds")
        self.jwt_audience = self.jwt_audience or f"fengqiao-{self.service_name}"
        if not self.database_url:
            RUN_DIR.mkdir(parents=True, exist_ok=True)
            self.database_url = f"sqlite+aiosqlite:///{RUN_DIR / (self.service_name + '.db')}"
        return self


def settings_kwargs(**overrides: Any) -> dict[str, Any]:
    """Helper for tests: drop None overrides."""
    return {k: v for k, v in overrides.items() if v is not None}


def _var(s: ServiceSettings, name: str) -> str:
    """The environment variable that sets a field (service prefix, or FENGQIAO_ for all)."""
    prefix = str(s.model_config.get("env_prefix") or "FENGQIAO_")
    return f"{prefix}{name.upper()} (or FENGQIAO_{name.upper()})"


def refuse_insecure(s: ServiceSettings) -> None:
    """Outside dev mode: no missing, published or short secret. The message names the variable."""
    if s.pii_key in ("", DEV_PII_KEY) or len(s.pii_key) < MIN_PII_KEY_CHARS:
        raise InsecureSettings(
            f"pii_key: set {_var(s, 'pii_key')} to a random key of {MIN_PII_KEY_CHARS}+ "
            "characters (not the dev default) outside dev mode"
        )
    if s.jwt_public_key in ("", DEV_JWT_PUBLIC_KEY):
        raise InsecureSettings(
            f"jwt_public_key: set {_var(s, 'jwt_public_key')} to the token issuer's Ed25519 "
            "public key (PEM; `fengqiao keys` makes a pair) outside dev mode"
        )
    if s.jwt_private_key == DEV_JWT_PRIVATE_KEY:
        raise InsecureSettings(
            f"jwt_private_key: {_var(s, 'jwt_private_key')} holds the published dev key"
        )
