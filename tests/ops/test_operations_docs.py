"""docs/operations.md, the alert rules and the dashboard speak of metrics that exist."""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import Counter, Gauge, Histogram

from shared import metrics
from tests.conftest import REPO

SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def exported() -> dict[str, object]:
    out: dict[str, object] = {}
    for value in vars(metrics).values():
        if isinstance(value, Counter | Gauge | Histogram):
            name = value._name + ("_total" if isinstance(value, Counter) else "")
            out[name] = value
    return out


def base(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_every_metric_is_documented_with_its_labels() -> None:
    doc = (REPO / "docs" / "operations.md").read_text()
    for name, metric in exported().items():
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"{name} is not in the metrics table"
        for label in metric._labelnames:  # type: ignore[attr-defined]
            assert label in row, (name, label)


def test_alert_rules_cover_lag_outbox_dead_letters_and_webhooks_with_real_series() -> None:
    rules = yaml.safe_load((REPO / "infra" / "prometheus" / "rules.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    names = set(exported())
    for rule in alerts.values():
        used = set(re.findall(r"fengqiao_[a-z_]+", rule["expr"]))
        assert {base(u) for u in used} <= names, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        doc = (REPO / "docs" / "operations.md").read_text().lower()
        assert f"### {anchor.replace('-', ' ')}" in doc, anchor
    assert "fengqiao_outbox_oldest_unsent_age_seconds" in alerts["FengqiaoOutboxStuck"]["expr"]
    assert "> 60" in alerts["FengqiaoOutboxStuck"]["expr"]
    assert "fengqiao_consumer_lag_records" in alerts["FengqiaoConsumerLagGrowing"]["expr"]
    assert "fengqiao_dead_letters_total" in alerts["FengqiaoDeadLetters"]["expr"]
    assert "fengqiao_webhook_deliveries_failing" in alerts["FengqiaoWebhookFailures"]["expr"]


def test_the_dashboard_queries_real_series() -> None:
    dash = json.loads((REPO / "infra" / "grafana" / "fengqiao-dashboard.json").read_text())
    names, seen = set(exported()), set()
    for panel in dash["panels"]:
        for target in panel["targets"]:
            used = {base(u) for u in re.findall(r"fengqiao_[a-z_]+", target["expr"])}
            assert used <= names, (panel["title"], used - names)
            seen |= used
    assert names <= seen  # every metric is on the dashboard
    prom = yaml.safe_load((REPO / "infra" / "prometheus" / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["/etc/prometheus/rules.yml"]


def test_the_settings_table_gives_the_code_defaults() -> None:
    """Each `FENGQIAO_*` row of the settings table states the default ServiceSettings has."""
    from shared.settings import ServiceSettings

    fields = ServiceSettings.model_fields
    rows = re.findall(
        r"^\| `FENGQIAO_([A-Z_]+)` \| ([^|]+) \|",
        (REPO / "docs" / "operations.md").read_text(),
        re.M,
    )
    checked = 0
    for env, documented in rows:
        name = env.lower()
        if name not in fields:
            continue
        default, text = fields[name].default, documented.strip().strip("`")
        if isinstance(default, bool):
            assert text == str(default).lower(), env
        elif isinstance(default, int | float):
            assert float(text) == default, env
        else:
            assert text == str(default), env
        checked += 1
    assert checked >= 8  # the table's rows were found
