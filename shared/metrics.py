"""Prometheus metrics of every service, the /metrics route and the HTTP edge middleware.

The bus, the relay and the handlers report through the small functions below (one call each);
database-derived gauges (outbox backlog, webhook deliveries) are read when /metrics is scraped,
so nothing polls the database in between. docs/operations.md lists every series.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import func
from sqlmodel import select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import tracing
from shared.logs import log_context

log = logging.getLogger("fengqiao.access")

HTTP_REQUESTS = Counter(
    "fengqiao_http_requests_total",
    "HTTP requests answered, by route template and status",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "fengqiao_http_request_duration_seconds",
    "HTTP request latency, by route template",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "fengqiao_consumer_lag_records",
    "Records on the partition not yet handled by the group (highwater - position)",
    ["service", "group", "topic", "partition"],
)
CONSUMER_BATCH = Histogram(
    "fengqiao_consumer_batch_records",
    "Records per partition batch handed to a consumer group",
    ["service", "group", "topic"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
CONSUMER_HANDLE = Histogram(
    "fengqiao_consumer_handle_seconds",
    "Time to handle one record, retries included",
    ["service", "group", "topic"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONSUMER_RETRIES = Counter(
    "fengqiao_consumer_retries_total",
    "Handler failures that were retried",
    ["service", "group", "topic"],
)
DEAD_LETTERS = Counter(
    "fengqiao_dead_letters_total",
    "Records sent to <topic>.dlq after failing every attempt or failing to decode",
    ["service", "group", "topic"],
)
UNKNOWN_EVENTS = Counter(
    "fengqiao_unknown_events_total",
    "Events of a type no service registered, skipped (logged once per type)",
    ["service", "group", "event_type"],
)
INBOX_PRUNED = Counter(
    "fengqiao_inbox_pruned_rows_total",
    "Inbox rows deleted as older than FENGQIAO_INBOX_RETENTION_DAYS (shared.inbox_retention)",
    ["service"],
)
OUTBOX_BACKLOG = Gauge("fengqiao_outbox_backlog_rows", "Outbox rows not yet published", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "fengqiao_outbox_oldest_unsent_age_seconds",
    "Age of the oldest unpublished outbox row (0 when none)",
    ["service"],
)
TRAIL_PARKED = Gauge(
    "fengqiao_trail_parked_entries",
    "Trail entries waiting for an entry they follow to be applied (shared.db.CausalGate)",
    ["service", "consumer"],
)
TRAIL_PARKED_OLDEST_AGE = Gauge(
    "fengqiao_trail_parked_oldest_age_seconds",
    "How long the oldest parked trail entry has waited (0 when none)",
    ["service", "consumer"],
)
WEBHOOKS_PENDING = Gauge(
    "fengqiao_webhook_deliveries_pending",
    "Status callbacks to integrators not yet acknowledged",
    ["service"],
)
WEBHOOKS_FAILING = Gauge(
    "fengqiao_webhook_deliveries_failing",
    "Pending status callbacks whose last attempt failed (waiting for a retry)",
    ["service"],
)
TRIAGE_DECISIONS = Counter(
    "fengqiao_triage_decisions_total",
    "Triage decisions, by the rule that decided, the severity and the human-review flag",
    ["rule", "severity", "review"],
)

# The consumer a record is being handled for (set by the bus around a batch).
_consuming: ContextVar[tuple[str, str]] = ContextVar("consuming", default=("", ""))


def consuming_in_this_task(service: str, group: str) -> None:
    """From now on in the calling task (a consumer's loop), records count for this group."""
    _consuming.set((service, group))


def batch_received(topic: str, size: int) -> None:
    """A partition batch reached the consumer."""
    service, group = _consuming.get()
    CONSUMER_BATCH.labels(service, group, topic).observe(size)


def record_handled(topic: str, seconds: float) -> None:
    """One record was handled (or dead-lettered) in this many seconds."""
    service, group = _consuming.get()
    CONSUMER_HANDLE.labels(service, group, topic).observe(seconds)


def retried(topic: str) -> None:
    """A handler failed and the record will be tried again."""
    service, group = _consuming.get()
    CONSUMER_RETRIES.labels(service, group, topic).inc()


def dead_lettered(topic: str) -> None:
    """A record went to the dead-letter topic."""
    service, group = _consuming.get()
    DEAD_LETTERS.labels(service, group, topic).inc()


def observe_lag(service: str, group: str, consumer: Any) -> None:
    """Set the lag of every partition assigned to an aiokafka consumer (never raises)."""
    try:
        assignment = consumer._subscription.subscription.assignment  # position without waiting
        for tp in consumer.assignment():
            highwater, state = consumer.highwater(tp), assignment.state_value(tp)
            if highwater is None or state is None or not state.has_valid_position:
                continue
            CONSUMER_LAG.labels(service, group, tp.topic, str(tp.partition)).set(
                max(0, highwater - state.position)
            )
    except Exception:  # metrics must never break consuming
        return


def triage_decided(rule: str, severity: str, review: bool) -> None:
    """Triage decided a case."""
    TRIAGE_DECISIONS.labels(rule or "none", severity, "true" if review else "false").inc()


def _age_seconds(oldest: datetime | None) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # SQLite hands back naive UTC
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - oldest).total_seconds())


async def sample_outbox(service: str, sessions: Any, outbox: Any) -> None:
    """Read the outbox backlog and the age of its oldest unsent row (every row is unsent:
    the relay deletes what the broker acknowledged)."""
    async with sessions() as session:
        count, oldest = (
            await session.exec(select(func.count(), func.min(outbox.created_at)))
        ).one()
    OUTBOX_BACKLOG.labels(service).set(count or 0)
    OUTBOX_OLDEST_AGE.labels(service).set(_age_seconds(oldest))


async def sample_parked(
    service: str, sessions: Any, parked: Any, consumers: Iterable[str] = ()
) -> None:
    """Read how many trail entries each consumer keeps parked and how long the oldest has
    waited; `consumers` (those with a causal gate) and any consumer seen before read 0 when
    none wait, so an alert sees the series fall back."""
    async with sessions() as session:
        rows = (
            await session.exec(
                select(parked.consumer, func.count(), func.min(parked.parked_at)).group_by(
                    parked.consumer
                )
            )
        ).all()
    waiting = {consumer: (count, oldest) for consumer, count, oldest in rows}
    seen = _PARKED_SEEN.setdefault(service, set())
    seen.update(consumers, waiting)
    for consumer in seen:
        count, oldest = waiting.get(consumer, (0, None))
        TRAIL_PARKED.labels(service, consumer).set(count)
        TRAIL_PARKED_OLDEST_AGE.labels(service, consumer).set(_age_seconds(oldest))


_PARKED_SEEN: dict[str, set[str]] = {}  # service → consumers whose parked gauges exist

Sampler = Callable[[], Awaitable[None]]


def metrics_route(app: FastAPI, samplers: list[Sampler]) -> None:
    """GET /metrics in the Prometheus text format; samplers refresh gauges first."""

    @app.get("/metrics", include_in_schema=False, response_class=PlainTextResponse)
    async def metrics(_request: Request) -> Response:
        for sample in samplers:
            try:
                await sample()
            except Exception as exc:  # a database hiccup must not hide the other series
                log.warning("metrics sampler failed", extra={"error": type(exc).__name__})
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# Routes that are polled by machines: counted, never written to the access log.
_QUIET = {"/metrics", "/healthz", "/readyz"}


class ObservabilityMiddleware:
    """Every request: a correlation id, a server span, an access-log line, HTTP metrics.

    The correlation id comes from X-Correlation-ID (or is made up) and is echoed back; events
    the request emits carry it. The access log names the route template (never the raw path or
    query string, where keys and personal data could appear) and no header.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        correlation_id = _clean_id(headers.get("x-correlation-id")) or uuid.uuid4().hex
        status = 500
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"  # bounded labels

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-correlation-id", correlation_id.encode()),
                ]
            await send(message)

        t0 = time.perf_counter()
        with (
            tracing.server_span(f"HTTP {method}", headers) as span,
            log_context(correlation_id=correlation_id, trace_id=tracing.current_trace_id()),
        ):
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                seconds = time.perf_counter() - t0
                route = _route_template(scope)
                tracing.name_server_span(span, f"HTTP {method} {route}", status)
                HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
                HTTP_LATENCY.labels(self.service, method, route).observe(seconds)
                if route not in _QUIET:
                    log.info(
                        "request",
                        extra={
                            "service": self.service,
                            "method": method,
                            "route": route,
                            "status": status,
                            "duration_ms": round(seconds * 1000, 1),
                        },
                    )


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def _clean_id(value: str | None) -> str | None:
    """Accept a caller's correlation id only if it is a short plain token."""
    if value and len(value) <= 64 and all(c.isalnum() or c in "-_." for c in value):
        return value
    return None


def install(app: FastAPI, service: str, samplers: list[Sampler]) -> None:
    """Mount /metrics and the observability middleware on a service's app."""
    metrics_route(app, samplers)
    app.add_middleware(ObservabilityMiddleware, service=service)
