"""End to end: reports in (half HTTP, half source topics), every case assigned, timed.

Submission time is taken per source_ref just before the request or the send; the trail topic
tells which case a ref opened (intake's `receive` entry, or `merge`) and when that case
reached `assigned` (mediator or organisation queue). Clock: this process's monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.common import BOOTSTRAP, percentile
from bench.reports import BenchReport
from bench.stack import Stack, api_keys
from shared.bus import PRODUCER_SETTINGS
from shared.topics import Topics


@dataclass
class Progress:
    """What the trail showed so far."""

    case_of_ref: dict[str, str] = field(default_factory=dict)
    merged_refs: set[str] = field(default_factory=set)
    cases: set[str] = field(default_factory=set)
    seen: dict[str, dict[str, float]] = field(default_factory=dict)  # status → case → first seen
    assigned_at: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    last_change: float = field(default_factory=time.monotonic)


class TrailWatcher:
    """Reads `<prefix>cases.trail` from the beginning (no group) and records progress."""

    def __init__(self, topics: Topics, refs: set[str]) -> None:
        self.topic, self.refs = topics.trail, refs
        self.p = Progress()
        self._task: asyncio.Task[None] | None = None
        self.consumer: Any = None

    async def start(self) -> None:
        """Connect and start reading in the background."""
        from aiokafka import AIOKafkaConsumer

        self.consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=BOOTSTRAP,
            group_id=None,
            auto_offset_reset="earliest",
            client_id="bench-trail-watcher",
        )
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        p = self.p
        while True:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=2000)
            now = time.monotonic()
            for records in batches.values():
                for r in records:
                    try:
                        env = json.loads(r.value)
                        e = env["payload"]
                    except (ValueError, KeyError, TypeError):
                        continue
                    if env.get("event_type") != "trail.appended":
                        continue
                    status, case_id = e.get("to_status"), e.get("case_id")
                    ref = (e.get("details") or {}).get("source_ref")
                    if e.get("action") == "receive" and ref in self.refs:
                        p.case_of_ref[ref] = case_id
                        p.cases.add(case_id)
                    elif e.get("action") == "merge" and ref in self.refs:
                        p.merged_refs.add(ref)
                    if status == "assigned" and case_id not in p.assigned_at:
                        p.assigned_at[case_id] = now
                    if status and case_id in p.cases:  # this run's cases only
                        p.statuses[status] = p.statuses.get(status, 0) + 1
                        p.seen.setdefault(status, {}).setdefault(case_id, now)
                    p.last_change = now

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.consumer is not None:
            await self.consumer.stop()


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
    import httpx
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, client_id="bench-sources", **PRODUCER_SETTINGS
    )
    await producer.start()
    queue: asyncio.Queue[BenchReport | None] = asyncio.Queue()
    acks: list[asyncio.Future[Any]] = []
    url = stack.url("intake") + "/v1/reports"

    async def http_worker(client: httpx.AsyncClient) -> None:
        while (rep := await queue.get()) is not None:
            submitted[rep.source_ref] = time.monotonic()
            try:
                r = await client.post(
                    url,
                    content=rep.body,
                    headers={
                        "X-API-Key": keys.get(rep.source, ""),
                        "Content-Type": "application/json",
                    },
                )
                if r.status_code >= 300:
                    errors[f"http {r.status_code}"] = errors.get(f"http {r.status_code}", 0) + 1
                    submitted.pop(rep.source_ref, None)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                submitted.pop(rep.source_ref, None)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    start = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            workers = [asyncio.create_task(http_worker(client)) for _ in range(concurrency)]
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
) -> dict[str, Any]:
    """One load run against a started, seeded stack; figures as a dict."""
    topics = Topics(stack.prefix)
    keys = api_keys(stack.creds)
    missing = {r.source for r in reports if r.via == "http"} - set(keys)
    if missing:
        raise RuntimeError(f"no integrator API key for source(s) {sorted(missing)}")
    refs = {r.source_ref for r in reports}
    watcher = TrailWatcher(topics, refs)
    submitted: dict[str, float] = {}
    errors: dict[str, int] = {}
    await watcher.start()
    cpu0, bench_cpu0 = stack.cpu_seconds(), time.process_time()
    timed_out = False
    try:
        t0 = time.monotonic()
        send_s = await asyncio.wait_for(
            _send_all(stack, topics, reports, keys, rate, concurrency, submitted, errors), timeout_s
        )
        deadline = t0 + timeout_s
        p = watcher.p
        while True:
            pending = [
                r
                for r in submitted
                if r not in p.merged_refs and p.case_of_ref.get(r) not in p.assigned_at
            ]
            if not pending:
                break
            now = time.monotonic()
            if now > deadline or now - p.last_change > stall_s or stack.dead():
                timed_out = True
                break
            await asyncio.sleep(0.2)
    finally:
        await watcher.stop()
    wall = time.monotonic() - t0
    cpu = {k: round(v - cpu0.get(k, 0.0), 1) for k, v in stack.cpu_seconds().items()}
    cpu["bench client"] = round(time.process_time() - bench_cpu0, 1)
    p = watcher.p
    lat = sorted(
        p.assigned_at[p.case_of_ref[r]] - t
        for r, t in submitted.items()
        if p.case_of_ref.get(r) in p.assigned_at
    )
    done_at = [
        p.assigned_at[p.case_of_ref[r]] for r in submitted if p.case_of_ref.get(r) in p.assigned_at
    ]
    first = min(submitted.values()) if submitted else 0.0
    elapsed = (max(done_at) - first) if done_at else float("nan")
    ms = [x * 1000 for x in lat]
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
        "assigned": len(lat),
        "incomplete": timed_out,
        "dead_processes": stack.dead(),
        "trail_counts": dict(sorted(p.statuses.items())),
        "elapsed_s": round(elapsed, 2),
        "throughput_per_s": round(len(lat) / elapsed, 1) if done_at and elapsed > 0 else 0.0,
        "stage_p50_ms": _stage_latencies(p, submitted),
        "cpu_s": cpu,
        "wall_s": round(wall, 1),
        "cpu_utilisation": f"{sum(cpu.values()) / wall / (os.cpu_count() or 1):.0%}",
        "latency_ms": {
            f"p{q}": round(v, 1) if (v := percentile(ms, q)) is not None else None
            for q in (50, 95, 99)
        },
    }


def _stage_latencies(p: Progress, submitted: dict[str, float]) -> dict[str, float | None]:
    """p50 of each hop: submit → received (intake), → triaged, → assigned (mediation)."""
    rec, tri, asg = (p.seen.get(s, {}) for s in ("received", "triaged", "assigned"))
    hops: dict[str, list[float]] = {
        "submit→received": [],
        "received→triaged": [],
        "triaged→assigned": [],
    }
    for ref, t in submitted.items():
        c = p.case_of_ref.get(ref)
        if c in rec:
            hops["submit→received"].append(rec[c] - t)
            if c in tri:
                hops["received→triaged"].append(tri[c] - rec[c])
                if c in asg:
                    hops["triaged→assigned"].append(asg[c] - tri[c])
    return {
        k: round(v * 1000, 1) if (v := percentile(sorted(x), 50)) is not None else None
        for k, x in hops.items()
    }


def run_stack(
    reports_fn: Any,
    n: int,
    rate: float | None,
    full_and_steady: bool,
    triage_instances: int,
    workdir: Any,
    profile_dir: Any = None,
    stall_s: float = 90,
    timeout_s: float = 3600,
) -> dict[str, Any]:
    """Start a fresh stack, run the load(s), always stop it; returns {run name: figures}."""
    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    stack = Stack(
        prefix=prefix, workdir=workdir, triage_instances=triage_instances, profile_dir=profile_dir
    )
    out: dict[str, Any] = {"prefix": prefix, "triage_instances": triage_instances}
    try:
        stack.creds = stack.seed()
        stack.start()
        out["ports"] = dict(stack.ports)
        full = asyncio.run(
            measure(
                stack, reports_fn(n, "f" + prefix[5:13]), None, stall_s=stall_s, timeout_s=timeout_s
            )
        )
        out["full_speed"] = full
        if full_and_steady:
            steady_rate = rate or max(1.0, round(0.5 * full["throughput_per_s"], 1))
            out["steady"] = asyncio.run(
                measure(
                    stack,
                    reports_fn(n, "s" + prefix[5:13]),
                    steady_rate,
                    stall_s=stall_s,
                    timeout_s=timeout_s,
                )
            )
    finally:
        stack.stop()
    return out
