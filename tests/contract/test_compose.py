"""docker-compose.yml cannot run here (no engine): check that it parses, wires every service,
scales, migrates once, keeps each service to its own database role, and passes Kafka settings."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import main as cli_main
from shared.bus import KafkaBus
from tests.conftest import REPO

SERVICES = {
    "intake": "INTAKE_",
    "triage": "TRIAGE_",
    "mediation": "MEDIATION_",
    "followup": "FOLLOWUP_",
}
SCALABLE = [*sorted(SERVICES), "console"]
GATEWAY_PORTS = {"intake": 8001, "triage": 8002, "mediation": 8003, "followup": 8004}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def _interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Resolve ${VAR:-default}, ${VAR:?msg} and ${VAR} as compose would, with test values."""
    env = env or {}

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if name in env:
            return env[name]
        if op == ":-":
            return arg
        return f"test-{name.lower()}-" + "x" * 32

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", one, value)


def _env(svc: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    return {k: _interpolate(str(v), env) for k, v in svc["environment"].items()}


def _settings_of(name: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    for k in list(os.environ):
        if k.startswith(("FENGQIAO_", SERVICES[name])):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    module = importlib.import_module(f"services.{name}.settings")
    settings_cls = next(
        v for k, v in vars(module).items() if k.endswith("Settings") and k != "ServiceSettings"
    )
    return settings_cls()


def test_infrastructure_uses_official_images_with_healthchecks(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert s["kafka"]["image"].startswith("apache/kafka:")
    assert s["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert s["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert s["postgres"]["image"].startswith("postgres:")
    assert any("infra/postgres/init.sh" in v for v in s["postgres"]["volumes"])
    for name in ("kafka", "postgres"):
        assert s[name]["healthcheck"]["test"]


@pytest.mark.parametrize("name", SCALABLE)
def test_scalable_services_publish_no_host_port_and_are_built_from_the_repo(
    compose: dict[str, Any], name: str
) -> None:
    svc = compose["services"][name]
    assert "ports" not in svc, f"{name}: a fixed host port prevents --scale"
    assert "container_name" not in svc
    assert svc["build"]["context"] == "." and svc["build"]["args"]["SERVICE"] == name
    assert svc["stop_grace_period"] == "10s"
    assert svc["healthcheck"]["test"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_waits_for_healthy_deps_and_the_finished_migration(
    compose: dict[str, Any], name: str
) -> None:
    svc = compose["services"][name]
    assert svc["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert "/readyz" in " ".join(svc["healthcheck"]["test"])
    assert (REPO / "services" / name / "main.py").exists()


def test_the_gateway_is_the_one_entry_point_and_hides_metrics(compose: dict[str, Any]) -> None:
    s = compose["services"]
    with_ports = {n for n, svc in s.items() if svc.get("ports") and "profiles" not in svc}
    assert with_ports == {"gateway"}
    published = {int(p.rsplit(":", 1)[1]) for p in s["gateway"]["ports"]}
    assert published == {*GATEWAY_PORTS.values(), 8005}
    conf = (REPO / "infra" / "gateway" / "nginx.conf").read_text()
    assert "resolver 127.0.0.11" in conf  # re-resolves: new replicas join without a reload
    for name, port in [*GATEWAY_PORTS.items(), ("console", 8005)]:
        target = 8005 if name == "console" else 8000
        assert re.search(rf"listen {port};.*set \$up {name}:{target};", conf), name
    assert conf.count("location = /metrics { return 404; }") == 5
    assert "$request_uri" not in conf.split("log_format", 1)[1].split(";", 1)[0]


def test_migrate_runs_once_before_the_services_as_each_services_role(
    compose: dict[str, Any],
) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["fengqiao", "migrate"]
    assert migrate["restart"] == "no"
    env = _env(migrate)
    for name in SERVICES:
        url = env[f"{name.upper()}_DATABASE_URL"]
        assert re.fullmatch(rf"postgresql\+asyncpg://{name}:[^@]+@postgres:5432/{name}", url)
    with pytest.raises(SystemExit):  # the command exists (and refuses what it does not know)
        cli_main(["migrate", "no-such-service"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_gets_the_settings_it_needs(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _settings_of(name, _env(compose["services"][name]), monkeypatch)
    assert s.dev_mode is False  # refuses default secrets
    assert s.migrate_on_start is False
    assert s.kafka_bootstrap == "kafka:9092"
    assert (s.kafka_partitions, s.kafka_replication_factor) == (12, 0)
    assert s.kafka_security_protocol == "PLAINTEXT"
    assert re.fullmatch(
        rf"postgresql\+asyncpg://{name}:[^@]+@postgres:5432/{name}", s.database_url
    ), "each service connects with its own role"
    assert s.pii_key != "dev-only-pii-key-change-me"


def test_kafka_tls_and_sasl_settings_reach_every_aiokafka_client(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    operator = {
        "FENGQIAO_KAFKA_BOOTSTRAP": "b1:9094,b2:9094,b3:9094",
        "FENGQIAO_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FENGQIAO_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "FENGQIAO_KAFKA_SASL_USERNAME": "fengqiao-triage",
        "FENGQIAO_KAFKA_SASL_PASSWORD": "s3cret-pass",
        "FENGQIAO_KAFKA_REPLICATION_FACTOR": "3",
    }
    s = _settings_of("triage", _env(compose["services"]["triage"], operator), monkeypatch)
    options = s.kafka_client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "fengqiao-triage"
    assert options["sasl_plain_password"] == "s3cret-pass"
    assert options["ssl_context"] is not None
    bus = KafkaBus(s.kafka_bootstrap, "triage", client_options=options)
    for config in (bus.producer_config(), bus.consumer_config("triage")):
        assert config["security_protocol"] == "SASL_SSL"
        assert config["sasl_plain_username"] == "fengqiao-triage"
        assert config["bootstrap_servers"] == "b1:9094,b2:9094,b3:9094"
    assert s.kafka_replication_factor == 3
    # plain text by default: no TLS context, no credentials
    plain = _settings_of("triage", _env(compose["services"]["triage"]), monkeypatch)
    assert plain.kafka_client_options() == {"security_protocol": "PLAINTEXT"}


def test_the_console_is_served_and_the_first_admin_bootstrap_is_documented(
    compose: dict[str, Any],
) -> None:
    console = compose["services"]["console"]
    env = _env(console)
    assert env["SERVICE"] == "console" and env["PORT"] == "8005"
    assert env["FENGQIAO_DEV_MODE"] == "false"
    for name in SERVICES:
        assert env[f"CONSOLE_{name.upper()}_URL"] == f"http://{name}:8000"
    head = (REPO / "docker-compose.yml").read_text().split("services:", 1)[0]
    assert "fengqiao admin create" in head
    assert "fengqiao admin create" in (REPO / "docs" / "operations.md").read_text()


def test_dockerfile_runs_the_service_named_by_the_build_arg() -> None:
    text = Path(REPO / "Dockerfile").read_text()
    assert "ARG SERVICE" in text and "services.${SERVICE}.main:create_app --factory" in text
    assert "--timeout-graceful-shutdown" in text
