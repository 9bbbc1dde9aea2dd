"""/metrics of the four running services during an end-to-end run (real broker, processes)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.auth import AUDIENCES, DEV_JWT_PRIVATE_KEY, StaffPrincipal, issue_token
from tests.ops.processes import SERVICES, Fleet, run_services

pytestmark = pytest.mark.kafka

Samples = list[tuple[str, dict[str, str], float]]


def scrape(url: str) -> Samples:
    """Every sample of /metrics as (name, labels, value)."""
    r = httpx.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    ]


def pick(samples: Samples, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    return [
        (lab, v)
        for n, lab, v in samples
        if n == name and all(lab.get(k) == want for k, want in labels.items())
    ]


def eventually(probe: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll a probe until it returns something truthy."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


@pytest.fixture
def fleet(kafka_bootstrap: str, tmp_path: Path) -> Any:
    with run_services(tmp_path, kafka_bootstrap, f"m{uuid.uuid4().hex[:8]}.") as running:
        yield running


def test_metrics_show_http_lag_outbox_and_decisions_of_a_report_end_to_end(fleet: Fleet) -> None:
    admin = {
        "Authorization": "Bearer "
        + issue_token(DEV_JWT_PRIVATE_KEY, AUDIENCES, StaffPrincipal("ops-admin", "admin"))
    }
    answer = httpx.post(
        f"{fleet['intake'].url}/v1/reports",
        headers={"X-API-Key": fleet.keys["110"], "X-Correlation-ID": "ops-metrics-1"},
        json={"source": "110", "source_ref": "MET-1", "text": "邻居楼上漏水，双方争吵。"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["x-correlation-id"] == "ops-metrics-1"
    case_id = answer.json()["case_id"]

    def ledger_has_mediation() -> Any:  # intake → triage → mediation → followup's ledger
        r = httpx.get(f"{fleet['followup'].url}/v1/cases/{case_id}/trail", headers=admin)
        entries = r.json()["entries"] if r.status_code == 200 else []
        producers = {str(e.get("actor", "")).split(":")[-1] for e in entries}
        return {"intake", "triage"} <= producers and len(producers) >= 3

    eventually(ledger_has_mediation, what="the case's trail in the ledger")

    def settled() -> dict[str, Samples] | None:
        scraped = {name: scrape(fleet[name].url) for name in SERVICES}
        for name, samples in scraped.items():
            lags = pick(samples, "fengqiao_consumer_lag_records", service=name)
            backlog = pick(samples, "fengqiao_outbox_backlog_rows", service=name)
            if not lags or any(v != 0 for _, v in lags) or backlog != [({"service": name}, 0)]:
                return None
        return scraped

    scraped = eventually(settled, what="every lag and outbox backlog back to 0")

    intake = scraped["intake"]
    posted = pick(
        intake,
        "fengqiao_http_requests_total",
        service="intake",
        method="POST",
        route="/v1/reports",
        status="202",
    )
    assert [v for _, v in posted] == [1.0]
    latency = pick(
        intake, "fengqiao_http_request_duration_seconds_count", route="/v1/reports", method="POST"
    )
    assert [v for _, v in latency] == [1.0]
    assert pick(intake, "fengqiao_webhook_deliveries_pending", service="intake")
    assert pick(intake, "fengqiao_webhook_deliveries_failing", service="intake")

    for name, samples in scraped.items():
        published_age = pick(samples, "fengqiao_outbox_oldest_unsent_age_seconds", service=name)
        assert [v for _, v in published_age] == [0.0], name
        if name == "intake":
            continue
        # every downstream service consumed at least one batch and handled its records
        batches = pick(samples, "fengqiao_consumer_batch_records_count", service=name)
        handled = pick(samples, "fengqiao_consumer_handle_seconds_count", service=name)
        assert sum(v for _, v in batches) >= 1, name
        assert sum(v for _, v in handled) >= sum(v for _, v in batches), name
        lags = pick(samples, "fengqiao_consumer_lag_records", service=name)
        assert {lab["partition"] for lab, _ in lags} and all(v == 0 for _, v in lags), name

    # the consumers that keep the trail in causal order: nothing waits once the case settled
    for name, consumer in (("intake", "intake.feedback"), ("followup", "followup.ledger")):
        for metric in ("fengqiao_trail_parked_entries", "fengqiao_trail_parked_oldest_age_seconds"):
            got = pick(scraped[name], metric, service=name)
            assert [(lab["consumer"], v) for lab, v in got] == [(consumer, 0.0)], (name, metric)

    decisions = pick(scraped["triage"], "fengqiao_triage_decisions_total")
    assert sum(v for _, v in decisions) == 1
    assert {lab["review"] for lab, _ in decisions} <= {"true", "false"}
    assert pick(scraped["mediation"], "fengqiao_dead_letters_total") == []
