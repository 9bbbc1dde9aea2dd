"""End to end: reports in (half HTTP, half source topics), every case followed to its end.

A case is done when three things happened: mediation assigned it (the `assigned` entry on
`<prefix>cases.trail`), the follow-up ledger holds that entry (`ledger_entries`, polled in
followup's database every 0.1 s), and the source was told (`assigned` on
`<prefix>feedback.<source>`). Submission time is taken per source_ref just before the request
or the send; the trail tells which case a ref opened (intake's `receive` entry, or `merge`).
Clock: this process's monotonic clock; a record's timestamp (set by the producing service's
relay, wall clock, same machine) is converted to it. The ledger has no write time of its own
(`recorded_at` is the event's time), so a ledger entry counts from the poll that saw it.

Each run also counts what the run lost, doubled or delivered out of causal order (trail,
ledger and feedback, with tests/causal.py's check), the CPU per case of every service and the
messages produced per case on every topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar

from bench import http1
from bench.common import BOOTSTRAP, percentile
from bench.reports import BenchReport
from bench.stack import BROKER_JIT, POSTGRES, Stack, api_keys
from shared.bus import PRODUCER_SETTINGS
from shared.topics import SOURCES, Topics
from tests.causal import causal_position_ok

T = TypeVar("T")
WALL_TO_MONO = time.time() - time.monotonic()  # recorded_at (wall clock) → monotonic


@dataclass
class Progress:
    """What the trail, the feedback topics and the ledger showed so far."""

    case_of_ref: dict[str, str] = field(default_factory=dict)
    cases_of_ref: dict[str, set[str]] = field(default_factory=dict)  # >1: a doubled report
    merged_refs: set[str] = field(default_factory=set)
    cases: set[str] = field(default_factory=set)
    seen: dict[str, dict[str, float]] = field(default_factory=dict)  # status → case → first seen
    assigned_at: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    # case → its trail entries in topic order: (event_id, follows, to_status, from_status)
    trail: dict[str, dict[str, tuple[list[str], str | None, str | None]]] = field(
        default_factory=dict
    )
    feedback: dict[str, list[str]] = field(default_factory=dict)  # ref → event ids, first copies
    feedback_copies: int = 0  # the same (ref, event) again: a re-send the source dedupes
    feedback_at: dict[str, float] = field(default_factory=dict)  # ref → `assigned` told
    ledger: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # case → (seq, event)
    ledger_at: dict[str, float] = field(default_factory=dict)  # case → `assigned` in the ledger
    ledger_last_id: int = 0
    ledger_ids: set[int] = field(default_factory=set)
    # ledger rows of cases the trail watcher has not shown yet (a loaded machine lets the
    # ledger poll run ahead of the trail topic's reader): kept until the case is known
    ledger_early: dict[str, list[tuple[int, str, str | None, float]]] = field(default_factory=dict)
    last_change: float = field(default_factory=time.monotonic)

    # ---- what one record means -------------------------------------------------------

    def on_trail(self, env: dict[str, Any], now: float, refs: set[str]) -> None:
        """A `trail.appended` envelope read from the trail topic."""
        e = env.get("payload") or {}
        status, case_id = e.get("to_status"), e.get("case_id")
        ref = (e.get("details") or {}).get("source_ref")
        if e.get("action") == "receive" and ref in refs:
            self.case_of_ref.setdefault(ref, case_id)
            self.cases_of_ref.setdefault(ref, set()).add(case_id)
            self.cases.add(case_id)
            for seq, event_id, to_status, at in self.ledger_early.pop(case_id, []):
                self._in_ledger(case_id, seq, event_id, to_status, at)
        elif e.get("action") == "merge" and ref in refs:
            self.merged_refs.add(ref)
        if case_id in self.cases:  # this run's cases only
            entries = self.trail.setdefault(case_id, {})
            event_id = env.get("event_id", "")
            if event_id in entries:
                return  # published again (a relay retried): not a new entry
            entries[event_id] = (list(e.get("follows") or []), e.get("from_status"), status)
            if status:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                self.seen.setdefault(status, {}).setdefault(case_id, now)
        if status == "assigned" and case_id not in self.assigned_at:
            self.assigned_at[case_id] = now
        self.last_change = time.monotonic()

    def on_feedback(self, body: dict[str, Any], now: float, refs: set[str]) -> None:
        """A status message to a source, read from `feedback.<source>`."""
        ref = body.get("source_ref")
        if ref not in refs:
            return
        told = self.feedback.setdefault(ref, [])
        if body.get("event_id") in told:
            self.feedback_copies += 1
            return
        told.append(body.get("event_id", ""))
        if body.get("status") == "assigned":
            self.feedback_at.setdefault(ref, now)
        self.last_change = time.monotonic()

    def on_ledger(self, row: tuple[Any, ...], now: float) -> None:
        """A new `ledger_entries` row, seen by the poll at `now`: (id, case_id, seq, event_id,
        to_status, recorded_at); recorded_at is the event's own time, not the write's."""
        row_id, case_id, seq, event_id, to_status, _ = row
        if row_id in self.ledger_ids:
            return  # read again through the look-back window
        self.ledger_ids.add(row_id)
        self.ledger_last_id = max(self.ledger_last_id, int(row_id))
        if case_id not in self.cases:  # another run's case, or one the trail has not shown yet
            self.ledger_early.setdefault(case_id, []).append((int(seq), event_id, to_status, now))
            return
        self._in_ledger(case_id, int(seq), event_id, to_status, now)

    def _in_ledger(
        self, case_id: str, seq: int, event_id: str, to_status: str | None, now: float
    ) -> None:
        self.ledger.setdefault(case_id, []).append((seq, event_id))
        if to_status == "assigned" and case_id not in self.ledger_at:
            self.ledger_at[case_id] = now
        self.last_change = time.monotonic()

    # ---- where a ref stands ----------------------------------------------------------

    def done(self, ref: str) -> bool:
        """Assigned, in the ledger and told to the source (a merged report: told only)."""
        if ref in self.merged_refs and ref not in self.case_of_ref:
            return True
        case = self.case_of_ref.get(ref)
        return case in self.assigned_at and case in self.ledger_at and ref in self.feedback_at


def record_time(timestamp_ms: int, now: float) -> float:
    """A record's timestamp (ms since the epoch, set by its producer) on the monotonic clock;
    never later than when it was read (`now`); `now` when the record has none."""
    if timestamp_ms <= 0:
        return now
    return min(now, timestamp_ms / 1000 - WALL_TO_MONO)


def checks(p: Progress, submitted: dict[str, float]) -> dict[str, int]:
    """Lost, doubled and out-of-causal-order counts over the run's reports.

    Causal order uses tests/causal.py: an entry must come after every entry it `follows`.
    The trail topic itself may carry a case's entries in another order (each service publishes
    its own; consumers park an entry until its cause is applied): counted, not a fault.
    """
    out = Counter[str]()
    for ref in submitted:
        cases = p.cases_of_ref.get(ref, set())
        if len(cases) > 1:
            out["doubled (a report opened >1 case)"] += 1
        if not cases and ref not in p.merged_refs:
            out["lost (no case)"] += 1
            continue
        case = p.case_of_ref.get(ref)
        if case is None:
            continue
        if case not in p.assigned_at:
            out["lost (never assigned)"] += 1
        if case not in p.ledger_at:
            out["lost (not in the ledger)"] += 1
        if ref not in p.feedback_at:
            out["lost (source never told)"] += 1
        entries = p.trail.get(case, {})
        moves = [to for _, frm, to in entries.values() if to == "assigned" and frm != to]
        if len(moves) > 1:
            out["doubled (assigned twice)"] += 1
        ledger = [e for _, e in sorted(p.ledger.get(case, []))]
        if len(ledger) != len(set(ledger)):
            out["doubled (ledger entry twice)"] += 1
        if not in_causal_order(ledger, entries):
            out["out of causal order (ledger)"] += 1
        if not in_causal_order(p.feedback.get(ref, []), entries):
            out["out of causal order (feedback)"] += 1
        if not in_causal_order(list(entries), entries):
            out["trail topic order ≠ causal order (parked, not a fault)"] += 1
    return dict(sorted(out.items()))


def in_causal_order(
    order: list[str], entries: dict[str, tuple[list[str], str | None, str | None]]
) -> bool:
    """Whether each of `order` (event ids) comes after every entry of the case it follows
    (tests/causal.py's check, on the entries the trail topic carried)."""
    envs = [
        SimpleNamespace(event_id=k, payload={"follows": entries[k][0]})
        for k in dict.fromkeys(order)
        if k in entries
    ]
    return causal_position_ok(order, envs)  # type: ignore[arg-type]


def faults(check: dict[str, int]) -> int:
    """The counts that must be zero (the trail topic's own order is not one)."""
    return sum(v for k, v in check.items() if not k.startswith("trail topic"))


class Watcher:
    """Reads the trail and the feedback topics from the beginning (no group)."""

    def __init__(self, topics: Topics, refs: set[str], progress: Progress) -> None:
        self.trail = topics.trail
        self.feedback = {topics.feedback(s) for s in SOURCES}
        self.refs, self.p = refs, progress
        self._task: asyncio.Task[None] | None = None
        self.consumer: Any = None

    async def start(self) -> None:
        """Connect and start reading in the background."""
        from aiokafka import AIOKafkaConsumer

        self.consumer = AIOKafkaConsumer(
            self.trail,
            *sorted(self.feedback),
            bootstrap_servers=BOOTSTRAP,
            group_id=None,
            auto_offset_reset="earliest",
            client_id="bench-watcher",
            metadata_max_age_ms=2000,  # feedback topics are created on first use
            # a fetch per 0.2 s or per MB, not one per few records: each costs this process
            # (and the broker) CPU on the cores being measured, and the times it reports are
            # the records' own timestamps, not when they were read
            fetch_max_wait_ms=200,
            fetch_min_bytes=1 << 20,
        )
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=5000)
            now = time.monotonic()
            for tp, records in batches.items():
                for r in records:
                    # when the service's producer made the record (wall clock, same machine),
                    # not when this busy process got round to reading it
                    at = record_time(r.timestamp, now)
                    try:
                        body = json.loads(r.value)
                    except ValueError:
                        continue
                    if not isinstance(body, dict):
                        continue
                    if tp.topic == self.trail:
                        if body.get("event_type") == "trail.appended":
                            self.p.on_trail(body, at, self.refs)
                    else:
                        self.p.on_feedback(body, at, self.refs)

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.consumer is not None:
            await self.consumer.stop()


LEDGER_SQL = (
    "SELECT id, case_id, seq, event_id, to_status, recorded_at FROM ledger_entries "
    "WHERE id > {} ORDER BY id LIMIT 5000"
)
# Ids come from a sequence: with two writers (two instances on PostgreSQL) a lower id can
# commit after a higher one was read, so every poll reads this many ids back again. SQLite
# has one writer at a time: ids become visible in order.
LOOK_BACK = {"sqlite": 0, "postgresql": 2000}


class LedgerWatcher:
    """Polls followup's `ledger_entries` (SQLite file or PostgreSQL) for new rows."""

    def __init__(self, url: str, progress: Progress, every_s: float = 0.1) -> None:
        self.url, self.p, self.every_s = url, progress, every_s
        self._task: asyncio.Task[None] | None = None
        self._sqlite: sqlite3.Connection | None = None

    async def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.create_task(self._run())

    def _rows_sqlite(self, path: str, after: int) -> list[tuple[Any, ...]]:
        # one read-only connection for the run, queried on the loop itself: under WAL a reader
        # never waits for the writer, each SELECT sees the latest commit, and a poll takes tens
        # of µs; a connection per poll (the schema parsed again) on a thread cost ~0.45 ms
        if self._sqlite is None:
            self._sqlite = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            self._sqlite.execute("PRAGMA busy_timeout=100")
        return self._sqlite.execute(LEDGER_SQL.format("?"), (after,)).fetchall()

    def _close_sqlite(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None

    async def _run(self) -> None:
        if self.url.startswith("sqlite"):
            path = self.url.split(":///", 1)[1]
            conn, back = None, LOOK_BACK["sqlite"]

            async def fetch(after: int) -> list[tuple[Any, ...]]:
                return self._rows_sqlite(path, after)

        else:
            import asyncpg

            conn = await asyncpg.connect(self.url.replace("postgresql+asyncpg", "postgresql"))
            back = LOOK_BACK["postgresql"]

            async def fetch(after: int) -> list[tuple[Any, ...]]:
                return [tuple(r) for r in await conn.fetch(LEDGER_SQL.format("$1"), after)]

        try:
            while True:
                try:
                    rows = await fetch(max(0, self.p.ledger_last_id - back))
                except (sqlite3.Error, OSError):
                    rows = []  # not migrated yet, or busy: next time, on a new connection
                    self._close_sqlite()
                now = time.monotonic()
                before = len(self.p.ledger_ids)
                for row in rows:
                    self.p.on_ledger(row, now)
                new = len(self.p.ledger_ids) > before
                if len(rows) < 5000 or not new:
                    await asyncio.sleep(self.every_s)
        finally:
            if conn is not None:
                await conn.close()
            self._close_sqlite()

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def topic_records(prefix: str) -> dict[str, int]:
    """Records so far in every topic of the run (end offsets summed), by name without prefix."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import TopicPartition

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="bench-offsets")
    c = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, client_id="bench-offsets")
    await admin.start()
    await c.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        parts = [
            TopicPartition(d["topic"], x["partition"])
            for d in (await admin.describe_topics(names) if names else [])
            for x in d["partitions"]
        ]
        ends = await c.end_offsets(parts) if parts else {}
        out: dict[str, int] = {}
        for tp, end in ends.items():
            name = tp.topic.removeprefix(prefix)
            out[name] = out.get(name, 0) + end
        return out
    finally:
        await admin.close()
        await c.stop()


def per_case(before: dict[str, int], after: dict[str, int], cases: int) -> dict[str, Any]:
    """Records produced during the run per case, by topic; the services' own and the total."""
    delta = {t: after[t] - before.get(t, 0) for t in after if after[t] - before.get(t, 0) > 0}
    if not cases:
        return {"by_topic": {}, "services": None, "total": None, "records": delta}
    by_topic = {t: round(n / cases, 2) for t, n in sorted(delta.items())}
    ours = sum(n for t, n in delta.items() if not t.startswith("source."))
    return {
        "by_topic": by_topic,
        "services": round(ours / cases, 2),  # what the services produced (not the sources)
        "total": round(sum(delta.values()) / cases, 2),
        "records": delta,
    }


def latency(p: Progress, submitted: dict[str, float], done: dict[str, float], by_ref: bool) -> Any:
    """p50/p95/p99 ms from submission to a moment known per case (by_ref: per source_ref)."""
    ms = sorted(
        (done[k] - t) * 1000
        for r, t in submitted.items()
        if (k := (r if by_ref else p.case_of_ref.get(r))) is not None and k in done
    )
    return {
        f"p{q}": round(v, 1) if (v := percentile(ms, q)) is not None else None for q in (50, 95, 99)
    } | {"n": len(ms)}


def cpu_per_case(cpu: dict[str, float], cases: int) -> dict[str, float | None]:
    """CPU ms per case of each service, the four summed (`services`), the broker, the client
    and PostgreSQL when the services run on it."""
    if not cases:
        return {}
    out: dict[str, float | None] = {k: round(v * 1000 / cases, 2) for k, v in sorted(cpu.items())}
    others = ("kafka broker", BROKER_JIT, "bench client", POSTGRES)
    svc = [v for k, v in cpu.items() if k not in others]
    out["services"] = round(sum(svc) * 1000 / cases, 2)
    return out


async def _send_all(
    stack: Stack,
    topics: Topics,
    reports: list[BenchReport],
    keys: dict[str, str],
    rate: float | None,
    concurrency: int,
    submitted: dict[str, float],
    errors: dict[str, int],
) -> float:
    """Submit every report, paced at `rate` per second (None: full speed); return seconds."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, client_id="bench-sources", **PRODUCER_SETTINGS
    )
    await producer.start()
    queue: asyncio.Queue[BenchReport | None] = asyncio.Queue()
    acks: list[asyncio.Future[Any]] = []
    # the sources' HTTP connections spread over intake's instances, as a load balancer in
    # front of them spreads them (one instance alone would take every report sent over HTTP)
    urls = [u + "/v1/reports" for u in stack.urls("intake")]
    defaults = http1.httpx_default_headers()  # the requests httpx sent, byte for byte
    headers = {
        src: (("X-API-Key", key), ("Content-Type", "application/json")) for src, key in keys.items()
    }
    no_key = (("X-API-Key", ""), ("Content-Type", "application/json"))

    async def http_worker(url: str) -> None:
        conn = http1.Connection(url, defaults, timeout_s=60)
        try:
            while (rep := await queue.get()) is not None:
                await post(conn, rep)
        finally:
            conn.close()

    async def post(conn: http1.Connection, rep: BenchReport) -> None:
        submitted[rep.source_ref] = time.monotonic()
        try:
            for attempt in range(6):
                try:
                    r = await conn.post(rep.body, headers.get(rep.source, no_key))
                except http1.TransportError as exc:
                    if attempt == 5:
                        raise
                    # no answer (e.g. a keep-alive connection closed as the request went
                    # out): a source sends it again; intake keeps one case per source_ref
                    key = f"{type(exc).__name__} (sent again)"
                    errors[key] = errors.get(key, 0) + 1
                    continue
                if r.status_code not in (429, 503) or attempt == 5:
                    break
                # shed or throttled: the source sends it again, as a real one would
                key = f"http {r.status_code} (sent again)"
                errors[key] = errors.get(key, 0) + 1
                await asyncio.sleep(min(2.0, float(r.headers.get("retry-after") or 1)))
            if r.status_code >= 300:
                errors[f"http {r.status_code}"] = errors.get(f"http {r.status_code}", 0) + 1
                submitted.pop(rep.source_ref, None)
        except http1.TransportError as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            submitted.pop(rep.source_ref, None)

    start = time.monotonic()
    workers: list[asyncio.Task[None]] = []
    try:
        workers = [
            asyncio.create_task(http_worker(urls[i % len(urls)])) for i in range(concurrency)
        ]
        for i, rep in enumerate(reports):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if rep.via == "http":
                queue.put_nowait(rep)
            else:
                submitted[rep.source_ref] = time.monotonic()
                acks.append(
                    await producer.send(
                        topics.source(rep.source), rep.body, key=rep.source_ref.encode()
                    )
                )
            if not rate and i % 500 == 499:
                await asyncio.sleep(0)  # let the HTTP workers in
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
        for res in await asyncio.gather(*acks, return_exceptions=True):
            if isinstance(res, BaseException):
                errors["kafka send"] = errors.get("kafka send", 0) + 1
    finally:
        for w in workers:
            w.cancel()
        await producer.stop()
    return time.monotonic() - start


async def measure(
    stack: Stack,
    reports: list[BenchReport],
    rate: float | None,
    *,
    concurrency: int = 32,
    stall_s: float = 90,
    timeout_s: float = 3600,
    idle_s: float = 5.0,
) -> dict[str, Any]:
    """One load run against a started, seeded stack; figures as a dict."""
    topics = Topics(stack.prefix)
    keys = api_keys(stack.creds)
    missing = {r.source for r in reports if r.via == "http"} - set(keys)
    if missing:
        raise RuntimeError(f"no integrator API key for source(s) {sorted(missing)}")
    refs = {r.source_ref for r in reports}
    # the feedback topics appear on first use: until then aiokafka logs "not found" errors
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    logging.getLogger("aiokafka.cluster").setLevel(logging.CRITICAL)
    p = Progress()
    watcher = Watcher(topics, refs, p)
    ledger = LedgerWatcher(stack.env()["FOLLOWUP_DATABASE_URL"], p)
    submitted: dict[str, float] = {}
    errors: dict[str, int] = {}
    records0 = await topic_records(stack.prefix)
    await watcher.start()
    await ledger.start()
    # what the services burn doing nothing (pollers, heartbeats), to tell it from the work
    idle0, t_idle = stack.cpu_by_service(), time.monotonic()
    await asyncio.sleep(idle_s)
    idle1 = stack.cpu_by_service()
    idle_per_s = {
        k: (v - idle0.get(k, 0.0)) / (time.monotonic() - t_idle) for k, v in idle1.items()
    }
    http1.httpx_default_headers()  # built once, before the client's CPU is counted
    cpu0, bench_cpu0 = stack.cpu_by_service(), time.process_time()
    load0 = os.getloadavg()
    timed_out = False
    try:
        t0 = time.monotonic()
        send_s = await asyncio.wait_for(
            _send_all(stack, topics, reports, keys, rate, concurrency, submitted, errors), timeout_s
        )
        deadline = t0 + timeout_s
        pending = list(submitted)
        while True:
            pending = [r for r in pending if not p.done(r)]  # done stays done
            if not pending:
                break
            now = time.monotonic()
            if now > deadline or now - p.last_change > stall_s or stack.dead():
                timed_out = True
                break
            await asyncio.sleep(0.2)
    finally:
        await watcher.stop()
        await ledger.stop()
    wall = time.monotonic() - t0
    cpu = {k: round(v - cpu0.get(k, 0.0), 2) for k, v in stack.cpu_by_service().items()}
    cpu["bench client"] = round(time.process_time() - bench_cpu0, 2)
    load1 = os.getloadavg()
    records1 = await topic_records(stack.prefix)
    assigned_refs = [r for r in submitted if p.case_of_ref.get(r) in p.assigned_at]
    n_assigned = len(assigned_refs)
    first = min(submitted.values()) if submitted else 0.0

    def rate_until(times: list[float]) -> tuple[float, float]:
        if not times:
            return float("nan"), 0.0
        el = max(times) - first
        return round(el, 2), round(len(times) / el, 1) if el > 0 else 0.0

    elapsed, tp = rate_until([p.assigned_at[p.case_of_ref[r]] for r in assigned_refs])
    complete = [r for r in submitted if p.done(r) and r in p.case_of_ref]
    ends = [
        max(p.assigned_at[p.case_of_ref[r]], p.ledger_at[p.case_of_ref[r]], p.feedback_at[r])
        for r in complete
    ]
    elapsed_all, tp_all = rate_until(ends)
    check = checks(p, submitted)
    messages = per_case(records0, records1, n_assigned)
    return {
        "offered_rate_per_s": rate or "full speed",
        "reports": len(reports),
        "submitted": len(submitted),
        "via_http": sum(r.via == "http" for r in reports),
        "via_kafka": sum(r.via == "kafka" for r in reports),
        "submit_errors": errors,
        "send_s": round(send_s, 2),
        "opened": len(p.case_of_ref),
        "merged": len(p.merged_refs),
        "assigned": n_assigned,
        "in_ledger": sum(1 for c in p.ledger_at if c in p.cases),
        "told_source": len(p.feedback_at),
        "incomplete": timed_out,
        "dead_processes": stack.dead(),
        "trail_counts": dict(sorted(p.statuses.items())),
        "elapsed_s": elapsed,
        "throughput_per_s": tp,  # to assignment
        "elapsed_all_s": elapsed_all,
        "throughput_all_per_s": tp_all,  # assigned, in the ledger and told, all three
        "stage_p50_ms": _stage_latencies(p, submitted),
        "cpu_s": cpu,
        "cpu_ms_per_case": cpu_per_case(cpu, n_assigned),
        "idle_cpu_ms_per_s": {k: round(v * 1000, 1) for k, v in sorted(idle_per_s.items())},
        # the same less what the services burn idle over the run's wall time: the work itself
        "cpu_ms_per_case_above_idle": cpu_per_case(
            {k: max(0.0, v - idle_per_s.get(k, 0.0) * wall) for k, v in cpu.items()},
            n_assigned,
        ),
        "wall_s": round(wall, 1),
        "cpu_utilisation": f"{sum(cpu.values()) / wall / (os.cpu_count() or 1):.0%}",
        "load_average": {
            "start": [round(x, 2) for x in load0],
            "end": [round(x, 2) for x in load1],
        },
        "latency_ms": latency(p, submitted, p.assigned_at, by_ref=False),
        "latency_ledger_ms": latency(p, submitted, p.ledger_at, by_ref=False),
        "latency_feedback_ms": latency(p, submitted, p.feedback_at, by_ref=True),
        "messages_per_case": messages,
        "messages_per_s": round(sum(messages["records"].values()) / wall, 1) if wall else None,
        "checks": check,
        "faults": faults(check),
        "feedback_copies": p.feedback_copies,
        "case_of_ref": dict(p.case_of_ref),  # for `after` (scale-out's deep check) only
        "submitted_refs": list(submitted),
    }


def _stage_latencies(p: Progress, submitted: dict[str, float]) -> dict[str, float | None]:
    """p50 of each hop: submit → received (intake), → triaged, → assigned (mediation)."""
    rec, tri, asg = (p.seen.get(s, {}) for s in ("received", "triaged", "assigned"))
    hops: dict[str, list[float]] = {
        "submit→received": [],
        "received→triaged": [],
        "triaged→assigned": [],
        "assigned→ledger": [],
        "assigned→feedback": [],
    }
    for ref, t in submitted.items():
        c = p.case_of_ref.get(ref)
        if c in rec:
            hops["submit→received"].append(rec[c] - t)
            if c in tri:
                hops["received→triaged"].append(tri[c] - rec[c])
                if c in asg:
                    hops["triaged→assigned"].append(asg[c] - tri[c])
        if c in p.assigned_at:
            if c in p.ledger_at:
                hops["assigned→ledger"].append(p.ledger_at[c] - p.assigned_at[c])
            if ref in p.feedback_at:
                hops["assigned→feedback"].append(p.feedback_at[ref] - p.assigned_at[c])
    return {
        k: round(v * 1000, 1) if (v := percentile(sorted(x), 50)) is not None else None
        for k, x in hops.items()
    }


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a load on uvloop when installed (the services' loop too): the bench client's own
    CPU is spent on the cores being measured, and the stdlib loop costs it more per case."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def run_stack(
    reports_fn: Any,
    n: int,
    rate: float | None,
    full_and_steady: bool,
    workdir: Any,
    *,
    instances: int = 1,
    extra_env: dict[str, str] | None = None,
    profile_dir: Any = None,
    stall_s: float = 90,
    timeout_s: float = 3600,
    prefix: str | None = None,
    after: Any = None,
) -> dict[str, Any]:
    """Start a fresh stack, run the load(s), always stop it; returns {run name: figures}.

    `after(stack, out)`, when given, runs on the still-running stack after the load(s).
    """
    prefix = prefix or f"bench{uuid.uuid4().hex[:8]}-"
    stack = Stack(
        prefix=prefix,
        workdir=workdir,
        instances=instances,
        profile_dir=profile_dir,
        extra_env=dict(extra_env or {}),
    )
    out: dict[str, Any] = {"prefix": prefix, "instances": instances}
    try:
        stack.creds = stack.seed()
        stack.start()
        out["ports"] = dict(stack.ports)
        full = run_loop(
            measure(
                stack, reports_fn(n, "f" + prefix[5:13]), None, stall_s=stall_s, timeout_s=timeout_s
            )
        )
        out["full_speed"] = full
        if full_and_steady:
            out["steady"] = run_loop(
                measure(
                    stack,
                    reports_fn(n, "s" + prefix[5:13]),
                    rate or 100.0,
                    stall_s=stall_s,
                    timeout_s=timeout_s,
                )
            )
        if after is not None:
            after(stack, out)
    finally:
        stack.stop()
    for run in ("full_speed", "steady"):
        out.get(run, {}).pop("case_of_ref", None)  # kept for `after` only
        out.get(run, {}).pop("submitted_refs", None)
    return out
