"""One report's path through the four services is one trace, and one correlation id in the logs.

The four services run in this process against the real broker (tests/e2e's `system`); spans go
to an in-memory exporter, log lines through the services' JSON formatter into a buffer.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing
from shared.logs import RedactingJsonFormatter
from tests.e2e.conftest import System, eventually, system  # noqa: F401 - the fixture

pytestmark = pytest.mark.kafka

SERVICES = {"intake", "triage", "mediation", "followup"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)
    provider.shutdown()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(RedactingJsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield buf
    root.removeHandler(handler)
    root.setLevel(old_level)


async def test_one_report_is_one_trace_and_one_correlation_id_across_the_four_services(
    system: System,  # noqa: F811
    spans: InMemorySpanExporter,
    log_lines: io.StringIO,
) -> None:
    r = await system.intake.post(
        "/v1/reports",
        json={"source": "grid", "source_ref": "TRACE-1", "text": "楼上漏水，邻居双方争吵。"},
        headers={"X-API-Key": system.keys["grid"], "X-Correlation-ID": "trace-report-1"},
    )
    assert r.status_code == 202, r.text
    case_id = r.json()["case_id"]

    def handled_by() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for span in spans.get_finished_spans():
            service = str((span.attributes or {}).get("fengqiao.service", ""))
            if service:
                out.setdefault(format(span.context.trace_id, "032x"), set()).add(service)
        return out

    async def every_service_handled_it() -> Any:
        return any({"triage", "mediation", "followup"} <= s for s in handled_by().values())

    await eventually(every_service_handled_it, what="consumer spans in three services")

    (request_span,) = [s for s in spans.get_finished_spans() if s.name == "HTTP POST /v1/reports"]
    trace_id = format(request_span.context.trace_id, "032x")
    # the request's trace is the one every downstream handler continued
    assert {"triage", "mediation", "followup"} <= handled_by()[trace_id]

    def ours_now() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
        return [line for line in lines if line.get("correlation_id") == "trace-report-1"]

    async def case_lines_logged() -> bool:
        # a consumer's "events handled" line and mediation's "case assigned" are written after
        # the batch's commit, which may come after its consumer span above has finished
        now = ours_now()
        return {line.get("service") for line in now} >= SERVICES and any(
            line.get("case_id") == case_id for line in now
        )

    await eventually(case_lines_logged, what="log lines of every service, one naming the case")
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    ours = [line for line in lines if line.get("correlation_id") == "trace-report-1"]
    assert {line.get("service") for line in ours} >= SERVICES
    assert {line["trace_id"] for line in ours} == {trace_id}
    assert any(line.get("case_id") == case_id for line in ours)
    access = [line for line in ours if line["logger"] == "fengqiao.access"]
    assert access and access[0]["route"] == "/v1/reports" and access[0]["status"] == 202
    assert all("X-API-Key" not in json.dumps(line) for line in lines)
    assert system.keys["grid"] not in log_lines.getvalue()
