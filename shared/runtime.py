"""What every service's lifespan starts and stops: engine, bus, consumers, outbox relay."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared import metrics, tracing
from shared.bus import CURRENT_HANDLER, Bus, InMemoryBus, KafkaBus, Message, handler_name
from shared.contracts import REGISTRY
from shared.db import Delivery, DeliveryTables, OutboxRelay, make_engine, migrate, ping_db
from shared.events import Envelope
from shared.inbox_retention import InboxPruner
from shared.logs import log_context
from shared.pii import PiiCipher
from shared.settings import ServiceSettings
from shared.staff_status import StaffStatusCache
from shared.topics import Topics

log = logging.getLogger("fengqiao.runtime")

EventHandler = Callable[[Envelope, Any], Awaitable[None]]


class Runtime:
    """One service's plumbing. Built in create_app(), started in the lifespan."""

    def __init__(
        self,
        settings: ServiceSettings,
        tables: DeliveryTables,
        migrations_dir: Path,
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.engine = make_engine(settings.database_url)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        retention = settings.inbox_retention_days
        self.delivery = Delivery(
            self.sessions,
            tables,
            settings.service_name,
            self.topics.trail,
            inbox_retention=timedelta(days=retention) if retention > 0 else None,
        )
        self.bus: Bus = bus or self._make_bus()
        self.relay = OutboxRelay(
            self.delivery,
            self.bus,
            settings.relay_interval_s,
            linger_s=settings.relay_linger_ms / 1000,
        )
        self.inbox_pruner = (
            InboxPruner(
                self.engine,
                tables.inbox,
                settings.service_name,
                self.delivery.inbox_retention,
                settings.inbox_prune_interval_s,
            )
            if self.delivery.inbox_retention is not None
            else None
        )
        self.cipher = PiiCipher(settings.pii_key, settings.pii_previous_keys)
        self.migrations_dir = migrations_dir
        self.staff_status = StaffStatusCache(
            self.sessions, tables.staff, settings.staff_status_ttl_s
        )
        self._started = False
        self.unknown_events: dict[str, int] = {}  # event type → how many were skipped (metrics)

    def _make_bus(self) -> Bus:
        s = self.settings
        if s.bus == "memory":
            return InMemoryBus(max_attempts=s.max_attempts)
        return KafkaBus(
            s.kafka_bootstrap,
            client_id=s.service_name,
            max_attempts=s.max_attempts,
            extra_topics=self.topics.all_internal(),
            partitions=s.kafka_partitions,
            replication_factor=s.kafka_replication_factor,
            client_options=s.kafka_client_options(),
            linger_ms=s.kafka_consumer_linger_ms,
            commit_interval_ms=s.kafka_commit_interval_ms,
        )

    def on_events(self, topics: list[str], group: str, handlers: dict[str, EventHandler]) -> None:
        """Subscribe a consumer group; route each event type to its handler, skip others."""

        async def handle(msg: Message, env: Envelope, logged: bool = True) -> str | None:
            """Handle one event; its trace id ("" when not tracing), None when it is not for this
            group. `logged`: write its own `event handled` line (a batch writes one line for all
            its events once committed)."""
            handler = handlers.get(env.event_type)
            if handler is None:
                if not REGISTRY.known(env.event_type):
                    self._unknown_event(group, env.event_type)
                return None  # a known event meant for another group
            CURRENT_HANDLER.set(handler_name(handler))
            # the handler's log lines and the events it emits carry the report's ids
            with (
                tracing.consumer_span(
                    f"{env.event_type} process",
                    tracing.traceparent_of(msg.headers, msg.value) or env.traceparent,
                    {"fengqiao.service": self.settings.service_name, "fengqiao.group": group},
                ),
                log_context(correlation_id=env.correlation_id, trace_id=tracing.current_trace_id()),
            ):
                payload: BaseModel = REGISTRY.parse(env)
                await handler(env, payload)
                trace_id = tracing.current_trace_id() or ""
                if logged:
                    log.info(
                        "event handled",
                        extra={
                            "service": self.settings.service_name,
                            "group": group,
                            "event_type": env.event_type,
                            "event_id": env.event_id,
                            "case_id": env.case_id,
                        },
                    )
            return trace_id

        async def dispatch(msg: Message) -> None:
            await handle(msg, Envelope.from_bytes(msg.value))

        async def dispatch_batch(msgs: list[Message]) -> None:
            # a record that is not an envelope fails the batch: the one-by-one replay
            # dead-letters it alone
            envs = [Envelope.from_bytes(m.value) for m in msgs]
            handled: list[tuple[Envelope, str]] = []
            async with self.delivery.batch(envs):
                for msg, env in zip(msgs, envs, strict=True):
                    trace_id = await handle(msg, env, logged=False)
                    if trace_id is not None:
                        handled.append((env, trace_id))
            if handled:  # committed: one line for the batch (a line per event cost ~5% of CPU)
                self._log_batch(group, handled)

        self.bus.subscribe(topics, self.settings.group(group), dispatch, dispatch_batch)

    def _log_batch(self, group: str, handled: list[tuple[Envelope, str]]) -> None:
        """One line for a committed batch. Where its events share one case, or one report's
        correlation id (and trace), the line carries them as any other line does (`case_id`,
        `correlation_id`), so a report's lines are found by its ids at any rate; otherwise it
        lists them (`case_ids`, `correlation_ids`)."""
        types: dict[str, int] = {}
        for env, _ in handled:
            types[env.event_type] = types.get(env.event_type, 0) + 1
        correlation_ids = sorted({env.correlation_id for env, _ in handled})
        trace_ids = {trace_id for _, trace_id in handled}
        extra: dict[str, Any] = {
            "service": self.settings.service_name,
            "group": group,
            "events": len(handled),
            "event_types": types,
            "event_ids": [env.event_id for env, _ in handled],
        }
        case_ids = sorted({env.case_id for env, _ in handled})
        if len(case_ids) == 1:
            extra["case_id"] = case_ids[0]
        else:
            extra["case_ids"] = case_ids
        if len(correlation_ids) == 1:
            extra["correlation_id"] = correlation_ids[0]
            if len(trace_ids) == 1 and "" not in trace_ids:
                extra["trace_id"] = next(iter(trace_ids))
        else:
            extra["correlation_ids"] = correlation_ids
        log.info("events handled", extra=extra)

    def _unknown_event(self, group: str, event_type: str) -> None:
        """Count an event of a type nobody registered; log the first one of each type."""
        key = event_type[:100]
        if key not in self.unknown_events and len(self.unknown_events) >= 1000:
            key = "<other>"  # garbage types must not grow this map without bound
        self.unknown_events[key] = self.unknown_events.get(key, 0) + 1
        metrics.UNKNOWN_EVENTS.labels(self.settings.service_name, group, key).inc()
        if self.unknown_events[key] == 1:
            log.warning(
                "event of an unknown type skipped",
                extra={"group": group, "event_type": key},
            )

    def on_messages(
        self,
        topics: list[str],
        group: str,
        handler: Callable[[Message], Awaitable[None]],
        batch_handler: Callable[[list[Message]], Awaitable[None]] | None = None,
    ) -> None:
        """Subscribe a consumer group to raw (non-envelope) records, e.g. source systems.

        A batch's records are handled in one transaction (Delivery.batch): each by `handler`,
        or all at once by `batch_handler` (set-based work); a batch that fails is replayed one
        record at a time through `handler`.
        """

        async def handle_batch(msgs: list[Message]) -> None:
            async with self.delivery.batch([]):
                if batch_handler is not None:
                    await batch_handler(msgs)
                    return
                for msg in msgs:
                    await handler(msg)

        self.bus.subscribe(topics, self.settings.group(group), handler, handle_batch)

    async def start(self) -> None:
        """Migrate the database (unless a migration job does), start the bus and the relay."""
        if self.settings.migrate_on_start:
            await migrate(self.engine, self.migrations_dir)
        self.on_events(
            [self.topics.staff],
            f"{self.settings.service_name}.staff",
            {"staff.changed": self.staff_status.staff_changed},
        )
        await self.bus.start()
        self.relay.start()
        if self.inbox_pruner is not None:
            self.inbox_pruner.start()
        self._started = True
        log.info("service started", extra={"service": self.settings.service_name})

    async def stop(self) -> None:
        """Stop the relay (flushing), the bus, then dispose of the engine."""
        # Bounded: with the broker gone a final publish or a producer flush can wait for
        # request_timeout_ms (40 s); the orchestrator kills us long before that. What the relay
        # could not send stays in the outbox for the next start.
        budget = self.settings.stop_timeout_s
        if self._started:
            if self.inbox_pruner is not None:
                await self.inbox_pruner.stop()
            for part, share in ((self.relay, 0.4), (self.bus, 0.6)):
                try:
                    async with asyncio.timeout(budget * share):
                        await part.stop()
                except TimeoutError:
                    log.warning("stop timed out", extra={"part": type(part).__name__})
        await self.engine.dispose()
        self._started = False

    async def checks(self) -> dict[str, bool]:
        """Readiness: database and broker reachable, the outbox relay making progress."""
        return {
            "database": await ping_db(self.engine),
            "broker": await self.bus.ping(),
            "relay": not self.relay.stalled,
        }
