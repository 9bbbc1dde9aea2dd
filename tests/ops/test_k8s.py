"""infra/k8s: plain manifests, parsed and checked for structure (no cluster runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.auth import DEV_JWT_PRIVATE_KEY
from shared.pii import DEV_PII_KEY
from shared.settings import ServiceSettings
from tests.conftest import REPO

K8S = REPO / "infra" / "k8s"
SERVICES = ("intake", "triage", "mediation", "followup")


def _docs() -> list[dict[str, Any]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return out


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return _docs()


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_kustomization_lists_every_manifest_and_all_live_in_one_namespace(
    docs: list[dict[str, Any]],
) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    for d in docs:
        assert d["apiVersion"] and d["kind"]
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "fengqiao", d["metadata"]["name"]


@pytest.mark.parametrize("name", [*SERVICES, "console"])
def test_each_service_is_a_deployment_with_probes_a_service_and_an_autoscaler(
    docs: list[dict[str, Any]], name: str
) -> None:
    deployment = by_kind(docs, "Deployment")[name]
    spec = deployment["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    pod = spec["template"]["spec"]
    assert 10 <= pod["terminationGracePeriodSeconds"] <= 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SERVICE"]["value"] == name
    port = container["ports"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    if name != "console":
        url = env[f"{name.upper()}_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert url == {"name": "fengqiao-databases", "key": name}
    assert container["resources"]["requests"]["cpu"]  # the HPA needs a CPU request
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    if container["securityContext"].get("readOnlyRootFilesystem"):
        assert "/tmp" in mounts

    service = by_kind(docs, "Service")[name]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]

    hpa = by_kind(docs, "HorizontalPodAutoscaler")[name]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", name)
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["minReplicas"] == spec["replicas"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_the_migration_job_migrates_every_database_and_the_deployments_do_not(
    docs: list[dict[str, Any]],
) -> None:
    job = by_kind(docs, "Job")["fengqiao-migrate"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    (container,) = pod["containers"]
    assert container["command"] == ["fengqiao", "migrate"]
    names = {e["name"] for e in container["env"]}
    assert {f"{s.upper()}_DATABASE_URL" for s in SERVICES} <= names
    config = by_kind(docs, "ConfigMap")["fengqiao-config"]["data"]
    assert config["FENGQIAO_MIGRATE_ON_START"] == "false"
    assert config["FENGQIAO_DEV_MODE"] == "false"


def test_config_keys_are_settings_the_services_read(docs: list[dict[str, Any]]) -> None:
    config = by_kind(docs, "ConfigMap")["fengqiao-config"]["data"]
    fields = set(ServiceSettings.model_fields)
    for key in config:
        if key.startswith("FENGQIAO_"):
            assert key.removeprefix("FENGQIAO_").lower() in fields, key
    assert int(config["FENGQIAO_KAFKA_PARTITIONS"]) == 12
    assert int(config["FENGQIAO_KAFKA_REPLICATION_FACTOR"]) == 3


def test_secrets_hold_every_referenced_key_and_no_development_default(
    docs: list[dict[str, Any]],
) -> None:
    secrets = by_kind(docs, "Secret")
    text = str(docs)
    key_refs = re.findall(r"'secretKeyRef': \{'name': '([^']+)', 'key': '([^']+)'", text)
    secret_refs = re.findall(r"'secretRef': \{'name': '([^']+)'", text)
    assert len(key_refs) >= 8 and len(secret_refs) >= 5
    for name, key in key_refs:
        assert key in secrets[name]["stringData"], (name, key)
    assert set(secret_refs) <= set(secrets)
    values = [v for s in secrets.values() for v in s["stringData"].values()]
    assert DEV_PII_KEY not in values and DEV_JWT_PRIVATE_KEY not in values
    for name in SERVICES:
        url = secrets["fengqiao-databases"]["stringData"][name]
        assert re.fullmatch(rf"postgresql\+asyncpg://{name}:[^@]+@[^/]+/{name}", url)


def test_the_image_the_manifests_run_is_the_one_the_dockerfile_builds(
    docs: list[dict[str, Any]],
) -> None:
    images = {
        c["image"]
        for d in docs
        if d["kind"] in ("Deployment", "Job")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert len(images) == 1
    assert "uid 10001" in Path(REPO / "Dockerfile").read_text().replace("--uid", "uid")
