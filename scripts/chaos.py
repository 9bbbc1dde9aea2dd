"""`make chaos`: faults injected into a running system on a broker of our own, then every report
checked. Never touches the shared broker on 9092: it starts one on --kafka-port.

The four services run as separate processes (bench.stack). While reports are submitted:
(a) random services are SIGKILLed and restarted every few seconds; (b) the broker is SIGKILLed
and restarted after an outage; (c) poison records (not an event) go to every consumed topic;
(d) delivered events are published again (a rewind: consumers see them a second time);
(e) with --db pg, PostgreSQL is stopped (fast: every connection cut) and started again after
an outage, while the broker is up.
Then, for every submitted report: exactly one case; `assigned` reached exactly once; the trail
verified (the chain covers causal order); the ledger's status equal to mediation's; feedback
to the source in causal order; consumer lag back to 0; dead letters per group = poison sent.
Prints a table; exits 1 when any count that must be 0 is not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import SERVICES, Stack, api_keys, pick_ports, wait_ready  # noqa: E402
from shared.topics import SOURCES, Topics  # noqa: E402

SAMPLES = ROOT.parent / "shared" / "samples" / "reports.jsonl"
# consumer groups (without prefix) and the topics each reads
GROUPS: dict[str, list[str]] = {
    "triage": ["reports", "mediation"],
    "mediation": ["triaged"],
    "mediation-followup": ["followup"],
    "followup": ["mediation"],
    "followup.ledger": ["trail"],
    "intake.feedback": ["trail"],
    "triage.scope": ["trail"],
}


@dataclass
class Config:
    """How hard to shake the system."""

    reports: int = 300
    rate: float = 10.0  # reports per second
    kills: int = 10
    kill_every_s: float = 4.0
    broker_outage_s: float = 40.0
    db_outage_s: float = 6.0  # with --db pg
    poison_rate: float = 0.015
    replay_rate: float = 0.05
    kafka_port: int = 19392
    controller_port: int = 19393
    drain_timeout_s: float = 420.0
    seed: int = 15
    cpu_hogs: int = 0  # CPU-bound neighbours running beside the services
    accept_every: int = 4  # a mediator signs for every n-th case during the faults
    db: str = "sqlite"  # or "pg": PostgreSQL, two instances of each service
    instances: int = 1
    workdir: Path | None = None


@dataclass
class Result:
    """What the run found; the `zero` counts must all be 0."""

    submitted: int = 0
    cases: int = 0
    lost: int = 0
    doubled: int = 0
    assigned_not_once: int = 0
    out_of_order: int = 0
    unverified: int = 0
    status_mismatch: int = 0
    feedback_out_of_order: int = 0
    stuck: int = 0
    lag: int = 0
    dlq_mismatch: int = 0
    topics_over_2x: int = 0  # topics holding more than twice as many records as events
    kills: int = 0
    supervisor_restarts: int = 0
    broker_outage_s: float = 0.0
    db_outage_s: float = 0.0
    db_waits: int = 0  # service log lines: a consumer or request met the database away
    poison: dict[str, int] = field(default_factory=dict)
    dlq: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)  # distinct events per topic
    drain_s: float = 0.0
    prefix: str = ""  # the run's topic and group prefix
    notes: list[str] = field(default_factory=list)
    # what each nonzero count found: the report, the case, both statuses and the trail
    found: list[str] = field(default_factory=list)

    ZERO = (
        "lost",
        "doubled",
        "assigned_not_once",
        "out_of_order",
        "unverified",
        "status_mismatch",
        "feedback_out_of_order",
        "stuck",
        "lag",
        "dlq_mismatch",
        "topics_over_2x",
    )

    def ok(self) -> bool:
        """Whether every count that must be zero is."""
        return all(getattr(self, k) == 0 for k in self.ZERO) and self.cases == self.submitted

    def table(self) -> str:
        """The run as a table."""
        rows = [
            ("submitted", self.submitted),
            ("cases", self.cases),
            *((k.replace("_", " "), getattr(self, k)) for k in self.ZERO),
            ("services SIGKILLed", self.kills),
            ("restarted after exiting", self.supervisor_restarts),
            ("broker outage (s)", round(self.broker_outage_s, 1)),
            ("database outage (s)", round(self.db_outage_s, 1)),
            ("met it (log lines)", self.db_waits),
            ("poison sent (per topic)", sum(self.poison.values())),
            ("dead letters (per group)", json.dumps(self.dlq, sort_keys=True)),
            ("drain time (s)", round(self.drain_s, 1)),
            ("records per topic", json.dumps(self.records, sort_keys=True)),
            ("events per topic", json.dumps(self.events, sort_keys=True)),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

    def report(self) -> str:
        """The table, then what every nonzero count found and the run's notes."""
        return "\n".join([self.table(), *self.found, *self.notes])


# ---------------------------------------------------------------------------------------------
# the broker of our own


@dataclass
class ChaosStack(Stack):
    """A bench stack with n instances of each service, knowing which are being restarted."""

    instances: int = 1
    restarting: dict[str, bool] = field(default_factory=dict)

    def start(self, timeout_s: float = 180) -> None:
        """Every service (n instances each, ports +10 apart) up and ready."""
        self.ports = pick_ports(dict(SERVICES))
        for name, port in self.ports.items():
            for k in range(self.instances):
                label = name if k == 0 else f"{name}{k + 1}"
                self.procs.append(self._spawn(name, port + 10 * k, self.env(), label))
        deadline = time.monotonic() + timeout_s
        for p in self.procs:
            if not wait_ready(p, deadline):
                raise RuntimeError(f"{p.name} not ready on port {p.port}")


def service_of(label: str) -> str:
    """intake2 → intake."""
    return label.rstrip("0123456789")


async def pg_drop(prefix: str) -> None:
    """Drop the run's databases."""
    import asyncpg

    admin = await asyncio.to_thread(pg_admin_url)
    conn = await asyncpg.connect(admin.replace("postgresql+asyncpg", "postgresql"))
    try:
        for name in SERVICES:
            await conn.execute(f'DROP DATABASE IF EXISTS "{prefix.rstrip(".")}_{name}"')
    finally:
        await conn.close()


def pg_admin_url() -> str:
    """The PostgreSQL server's admin URL (scripts/pg.sh url)."""
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "pg.sh"), "url"], capture_output=True, text=True, check=True
    ).stdout.strip()


async def pg_databases(prefix: str) -> dict[str, str]:
    """A fresh PostgreSQL database per service on the project's server (scripts/pg.sh)."""
    import asyncpg

    admin = await asyncio.to_thread(pg_admin_url)
    conn = await asyncpg.connect(admin.replace("postgresql+asyncpg", "postgresql"))
    urls = {}
    try:
        for name in SERVICES:
            db = f"{prefix.rstrip('.')}_{name}"
            await conn.execute(f'CREATE DATABASE "{db}"')
            urls[f"{name.upper()}_DATABASE_URL"] = admin.rsplit("/", 1)[0] + f"/{db}"
    finally:
        await conn.close()
    return urls


def broker_env(cfg: Config) -> dict[str, str]:
    """kafka.sh's environment for our broker."""
    return {
        **os.environ,
        "KAFKA_PORT": str(cfg.kafka_port),
        "KAFKA_CONTROLLER_PORT": str(cfg.controller_port),
        # its own pid file and data: never mistaken for (or killing) the suite's broker
        "KAFKA_RUN_DIR": str(chaos_run_dir(cfg)),
        # after a SIGKILL the broker recovers every partition before it is ready: with one
        # run's topics (12 partitions each) that took 93 s at load 25, past kafka.sh's 90 s.
        # The services see a longer outage (the table shows its real length); they must
        # survive that too, so the run waits for the broker instead of failing on it.
        "KAFKA_START_TIMEOUT": os.environ.get("KAFKA_START_TIMEOUT", "300"),
    }


def chaos_run_dir(cfg: Config) -> Path:
    """Where the chaos broker keeps its pid, configs and data."""
    return ROOT / ".run" / f"kafka-chaos-{cfg.kafka_port}"


def broker_reset(cfg: Config) -> None:
    """Stop a broker left over on our port and delete its data: every run starts empty.

    The data of earlier runs (each with its own topic prefix) used to stay: every run added its
    topics, and the restart after the outage — a recovery of every partition after a SIGKILL —
    took 24, 38, 74, 101 s in successive runs on a loaded host, until it outlasted kafka.sh's
    90 s and the run failed (the flaky test_chaos_small).
    """
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "kafka.sh"), "reset"],
        env=broker_env(cfg),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def broker_start(cfg: Config) -> None:
    """Start (or restart after a kill) the chaos broker; its data survive restarts."""
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "kafka.sh"), "start"], env=broker_env(cfg), check=True
    )


def broker_kill(cfg: Config) -> None:
    """SIGKILL the chaos broker (no clean shutdown)."""
    pid = int((chaos_run_dir(cfg) / "broker.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def broker_stop(cfg: Config) -> None:
    """Stop the chaos broker."""
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "kafka.sh"), "stop"], env=broker_env(cfg), check=False
    )


# ---------------------------------------------------------------------------------------------
# load


def make_reports(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """n reports from the sample texts, each with its own reference and its own party (no
    two share a phone, so none is merged into another: one report, one case)."""
    samples = [json.loads(line) for line in SAMPLES.read_text(encoding="utf-8").splitlines()]
    run = uuid.uuid4().hex[:6]
    out = []
    for i in range(n):
        s = rng.choice(samples)
        out.append(
            {
                "source": s["source"],
                "source_ref": f"CH-{run}-{i:05d}",
                "text": s["text"],
                "category": s.get("category"),
                "location": s.get("location"),
                "parties": [
                    {"name": "甲" + "乙丙丁戊"[i % 4], "phone": f"139{i:08d}", "role": "citizen"}
                ],
            }
        )
    return out


async def submit_all(
    stack: Stack,
    keys: dict[str, str],
    reports: list[dict[str, Any]],
    rate: float,
    cases: dict[str, str],
) -> dict[str, str]:
    """POST every report, retrying while intake is down; fills and returns source_ref → case."""
    import httpx

    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for r in reports:
        queue.put_nowait(r)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            r = queue.get_nowait()
            while True:
                try:
                    resp = await client.post(
                        f"{stack.url('intake')}/v1/reports",
                        json=r,
                        headers={"X-API-Key": keys[r["source"]]},
                        timeout=30,
                    )
                    if resp.status_code == 202:
                        cases[r["source_ref"]] = resp.json()["case_id"]
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)  # intake is restarting: the same report again
            await asyncio.sleep(4 / rate)

    async with httpx.AsyncClient() as client:
        await asyncio.gather(*(worker(client) for _ in range(4)))
    return cases


def token_for_case(staff: list[dict[str, Any]], case: dict[str, Any]) -> dict[str, str] | None:
    """The bearer header of the case's mediator, or of a mediator of its organisation."""
    for s in staff:
        if case.get("mediator_id") and s.get("staff_id") == case["mediator_id"]:
            return {"Authorization": f"Bearer {s['token']}"}
    for s in staff:
        if s.get("role") == "mediator" and s.get("organisation") == case.get("organisation_id"):
            return {"Authorization": f"Bearer {s['token']}"}
    return None


async def acceptor(
    stack: ChaosStack,
    staff: list[dict[str, Any]],
    admin: dict[str, str],
    cases: dict[str, str],
    wanted: set[str],
    accepted: set[str],
    stop: asyncio.Event,
) -> None:
    """Mediators sign for (签收) some cases while the faults go on: trail entries written by a
    person over HTTP, ordered after the system's, by a service that may be killed meanwhile."""
    import httpx

    async with httpx.AsyncClient(timeout=15) as client:
        while not stop.is_set() or wanted - accepted:
            for ref in sorted(wanted - accepted):
                case_id = cases.get(ref)
                if case_id is None:
                    continue
                try:
                    url = f"{stack.url('mediation')}/v1/mediation/cases/{case_id}"
                    r = await client.get(url, headers=admin)
                    if r.status_code != 200:
                        continue
                    case = r.json()
                    if case["status"] == "accepted":
                        accepted.add(ref)
                        continue
                    who = token_for_case(staff, case)
                    if case["status"] != "assigned" or who is None:
                        continue
                    await client.post(
                        f"{stack.url('mediation')}/v1/cases/{case_id}/accept", headers=who
                    )
                except httpx.HTTPError:
                    pass  # mediation is restarting: try again
            if stop.is_set() and wanted - accepted:
                await asyncio.sleep(1)
            else:
                await asyncio.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# faults


def respawn(stack: ChaosStack, i: int, deadline_s: float = 300) -> None:
    """Start process i again and wait until it is ready; like a supervisor, start it again
    whenever it exits (a service that starts while the broker is down exits at startup)."""
    old = stack.procs[i]
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        new = stack._spawn(service_of(old.name), old.port, stack.env(), old.name)
        stack.procs[i] = new
        while new.popen.poll() is None and time.monotonic() < deadline:
            if wait_ready(new, time.monotonic() + 5):
                return
        if new.popen.poll() is None:
            break
        time.sleep(1)
    raise RuntimeError(f"{old.name} did not come back")


def restart(stack: ChaosStack, name: str) -> None:
    """SIGKILL one service process and start it again on the same port."""
    i = next(k for k, p in enumerate(stack.procs) if p.name == name)
    old = stack.procs[i]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(old.popen.pid, signal.SIGKILL)
    old.popen.wait(timeout=10)
    respawn(stack, i)


async def supervise(stack: ChaosStack, result: Result, stop: asyncio.Event) -> None:
    """Start again any service that exited on its own (e.g. started during the outage)."""
    while not stop.is_set():
        for i, p in enumerate(list(stack.procs)):
            if p.popen.poll() is not None and not stack.restarting.get(p.name):
                result.supervisor_restarts += 1
                stack.restarting[p.name] = True
                try:
                    await asyncio.to_thread(respawn, stack, i)
                finally:
                    stack.restarting[p.name] = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                await stop.wait()


async def killer(stack: ChaosStack, cfg: Config, rng: random.Random, result: Result) -> None:
    """SIGKILL a random service every few seconds until cfg.kills were done."""
    for _ in range(cfg.kills):
        await asyncio.sleep(cfg.kill_every_s * (0.5 + rng.random()))
        name = rng.choice([p.name for p in stack.procs])
        if stack.restarting.get(name):
            continue
        stack.restarting[name] = True
        try:
            await asyncio.to_thread(restart, stack, name)
        finally:
            stack.restarting[name] = False
        result.kills += 1


async def outage(cfg: Config, result: Result, after_s: float) -> None:
    """SIGKILL the broker, keep it down, start it again."""
    if cfg.broker_outage_s <= 0:
        return
    await asyncio.sleep(after_s)
    t0 = time.monotonic()
    await asyncio.to_thread(broker_kill, cfg)
    await asyncio.sleep(cfg.broker_outage_s)
    await asyncio.to_thread(broker_start, cfg)
    result.broker_outage_s = time.monotonic() - t0


async def db_outage(cfg: Config, result: Result, after_s: float) -> None:
    """Stop PostgreSQL (fast shutdown: every connection cut), keep it down, start it again."""
    if cfg.db != "pg" or cfg.db_outage_s <= 0:
        return
    await asyncio.sleep(after_s)
    pg = ["bash", str(ROOT / "scripts" / "pg.sh")]
    t0 = time.monotonic()
    await asyncio.to_thread(subprocess.run, [*pg, "stop"], check=True)
    await asyncio.sleep(cfg.db_outage_s)
    await asyncio.to_thread(subprocess.run, [*pg, "start"], check=True, capture_output=True)
    result.db_outage_s = time.monotonic() - t0


async def poison_and_replay(
    bootstrap: str, topics: Topics, cfg: Config, rng: random.Random, result: Result
) -> None:
    """Poison records on every consumed topic; delivered events published a second time."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    names = sorted({t for ts in GROUPS.values() for t in ts})
    consumed = {n: getattr(topics, n) for n in names}
    reader = AIOKafkaConsumer(
        *consumed.values(),
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await reader.start()
    await producer.start()
    try:
        batches = await reader.getmany(timeout_ms=2000, max_records=5000)
        for records in batches.values():
            for r in records:
                if rng.random() < cfg.replay_rate:  # the same event again
                    await producer.send_and_wait(r.topic, r.value, key=r.key)
                if rng.random() < cfg.poison_rate:
                    await producer.send_and_wait(
                        r.topic, b"\x00chaos-poison " + os.urandom(8), key=r.key
                    )
                    result.poison[r.topic] = result.poison.get(r.topic, 0) + 1
    finally:
        await reader.stop()
        await producer.stop()


# ---------------------------------------------------------------------------------------------
# checks


async def read_all(bootstrap: str, topics: list[str]) -> list[Any]:
    """Every record of the topics, from the beginning to their current end."""
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await c.start()
    out: list[Any] = []
    try:
        parts = c.assignment()
        while not parts:
            await asyncio.sleep(0.2)
            parts = c.assignment()
        end = await c.end_offsets(list(parts))

        async def behind() -> bool:
            for tp in parts:
                if await c.position(tp) < end[tp]:
                    return True
            return False

        while await behind():
            for recs in (await c.getmany(timeout_ms=1000, max_records=5000)).values():
                out.extend(recs)
    finally:
        await c.stop()
    return out


async def lag_of(bootstrap: str, groups: list[str]) -> dict[str, int]:
    """Records not yet committed by the groups, per group, topic and partition (only those > 0)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await c.start()
    behind: dict[str, int] = {}
    try:
        for g in groups:
            committed = await admin.list_consumer_group_offsets(g)
            if not committed:
                continue
            ends = await c.end_offsets(list(committed))
            for tp, m in committed.items():
                if ends[tp] > m.offset:
                    behind[f"{g} {tp.topic}[{tp.partition}]"] = ends[tp] - m.offset
    finally:
        await admin.close()
        await c.stop()
    return behind


FOUND_PER_COUNT = 5  # cases described per nonzero count


def describe_case(
    count: str,
    ref: str,
    case_id: str,
    statuses: dict[str, str],
    trail: list[dict[str, Any]],
    feedback: list[str],
) -> str:
    """One failing case in a line or two: which count, both statuses, the trail, the feedback."""
    steps = [
        f"{e.get('seq')}:{e.get('action')} {e.get('from_status')}→{e.get('to_status')}"
        f" by {e.get('producer')} ({str(e.get('event_id'))[:8]})"
        for e in trail
    ]
    said = " ".join(f"{k}={v}" for k, v in statuses.items())
    return (
        f"  {count}: {ref} case {case_id} {said}\n"
        f"    trail: {'; '.join(steps) or '-'}\n    feedback: {', '.join(feedback) or '-'}"
    )


async def check(
    stack: Stack,
    bootstrap: str,
    topics: Topics,
    prefix: str,
    cases: dict[str, str],
    reports: list[dict[str, Any]],
    result: Result,
    admin: dict[str, str],
    must_accept: set[str] = frozenset(),  # type: ignore[assignment]
) -> bool:
    """Fill in the counts; True when everything has settled (nothing stuck, no lag)."""
    import httpx

    result.submitted = len(reports)
    result.cases = len(set(cases.values()))
    counts = Counter(cases.values())
    result.doubled = sum(1 for n in counts.values() if n > 1)
    result.lost = sum(1 for r in reports if r["source_ref"] not in cases)
    fb = await read_all(bootstrap, [topics.feedback(s) for s in SOURCES])
    feedback: dict[str, list[tuple[str, str]]] = defaultdict(list)
    seen_fb: set[str] = set()
    for rec in fb:
        body = json.loads(rec.value)
        if body["event_id"] in seen_fb:
            continue  # sent again after a crash: the source dedupes by event id
        seen_fb.add(body["event_id"])
        feedback[body["source_ref"]].append((body["event_id"], body["status"]))
    result.assigned_not_once = result.out_of_order = result.unverified = 0
    result.status_mismatch = result.feedback_out_of_order = result.stuck = 0
    found: dict[str, list[str]] = defaultdict(list)

    def note(count: str, line: str) -> None:
        setattr(result, count, getattr(result, count) + 1)
        if len(found[count]) < FOUND_PER_COUNT:
            found[count].append(line)

    async with httpx.AsyncClient(timeout=30) as client:
        for r in reports:
            ref = r["source_ref"]
            case_id = cases.get(ref)
            if case_id is None:
                found["lost"].append(f"  lost: {ref} never got a case id from intake")
                continue
            led = await client.get(f"{stack.url('followup')}/v1/cases/{case_id}", headers=admin)
            med = await client.get(
                f"{stack.url('mediation')}/v1/mediation/cases/{case_id}", headers=admin
            )
            statuses = {
                name: resp.json()["status"] if resp.status_code == 200 else str(resp.status_code)
                for name, resp in (("mediation", med), ("ledger", led))
            }
            trail_resp = await client.get(
                f"{stack.url('followup')}/v1/cases/{case_id}/trail", headers=admin
            )
            trail = trail_resp.json()["entries"] if trail_resp.status_code == 200 else []
            got = [status for _, status in feedback.get(ref, [])]
            wrong: list[tuple[str, str]] = []  # (count, why)
            if led.status_code != 200 or med.status_code != 200:
                wrong.append(("stuck", " (not known to both services)"))
            else:
                want = "accepted" if ref in must_accept else "assigned"
                if statuses["ledger"] != statuses["mediation"]:
                    wrong.append(("status_mismatch", ""))
                if statuses["mediation"] != want:
                    wrong.append(("stuck", f" (expected {want})"))
                verify = (
                    await client.get(
                        f"{stack.url('followup')}/v1/cases/{case_id}/trail/verify", headers=admin
                    )
                ).json()
                if not verify["valid"]:
                    wrong.append(("unverified", f" {json.dumps(verify, ensure_ascii=False)[:300]}"))
                order = [e["to_status"] for e in trail if e["from_status"] != e["to_status"]]
                if order.count("assigned") != 1:
                    wrong.append(("assigned_not_once", ""))
                life = ["received", "triaged", "assigned", "accepted"]
                if order != life[: len(order)]:
                    wrong.append(("out_of_order", ""))
                if got != order:
                    wrong.append(("feedback_out_of_order", ""))
            for count, why in wrong:
                note(count, describe_case(count + why, ref, case_id, statuses, trail, got))
    behind = await lag_of(bootstrap, [f"{prefix}{g}" for g in GROUPS])
    result.lag = sum(behind.values())
    if behind:
        found["lag"].append(f"  lag: {json.dumps(behind, sort_keys=True)}")
    # dead letters, once per (group, origin record): a killed consumer may dead-letter twice
    dlq_topics = [Topics.dlq(getattr(topics, n)) for n in {t for ts in GROUPS.values() for t in ts}]
    dead = {
        (
            dict(r.headers).get("dlq.group", b"").decode(),
            dict(r.headers).get("dlq.origin.topic", b"").decode(),
            dict(r.headers).get("dlq.origin.partition", b"").decode(),
            dict(r.headers).get("dlq.origin.offset", b"").decode(),
        )
        for r in await read_all(bootstrap, dlq_topics)
    }
    result.dlq = dict(Counter(g.removeprefix(prefix) for g, *_ in dead))
    expected: Counter[str] = Counter()
    for g, names in GROUPS.items():
        for n in names:
            expected[g] += result.poison.get(getattr(topics, n), 0)
    result.dlq_mismatch = sum(
        abs(expected[g] - result.dlq.get(g, 0)) for g in set(expected) | set(result.dlq)
    )
    if result.dlq_mismatch:
        found["dlq_mismatch"].append(
            f"  dlq mismatch: poison per group {json.dumps(dict(expected), sort_keys=True)},"
            f" dead letters {json.dumps(result.dlq, sort_keys=True)}"
        )
    result.found = [line for lines in found.values() for line in lines]
    return result.stuck == 0 and result.lag == 0 and result.dlq_mismatch == 0


def distinct_events(records: list[Any], prefix: str) -> dict[str, int]:
    """Distinct event ids per topic (poison records, which are not events, count for none)."""
    ids: dict[str, set[str]] = defaultdict(set)
    for r in records:
        try:
            ids[r.topic.removeprefix(prefix)].add(json.loads(r.value)["event_id"])
        except (ValueError, KeyError, TypeError):
            continue
    return {t: len(v) for t, v in ids.items()}


def prefixes_on_broker(cfg: Config) -> set[str]:
    """The run prefixes whose topics the chaos broker's data directory holds."""
    data = chaos_run_dir(cfg) / "data"
    if not data.is_dir():
        return set()
    return {p.name.split(".", 1)[0] + "." for p in data.iterdir() if p.name.startswith("chaos")}


def start_hogs(n: int) -> list[subprocess.Popen[bytes]]:
    """n processes that do nothing but burn a CPU."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def admin_header(env: dict[str, str]) -> dict[str, str]:
    """An admin's bearer token, signed with the services' secret as their environment sets it."""
    from services.mediation.settings import MediationSettings
    from shared.auth import AUDIENCES, StaffPrincipal, issue_token

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        s = MediationSettings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    token = issue_token(s.jwt_private_key, AUDIENCES, StaffPrincipal("chaos-admin", "admin"))
    return {"Authorization": f"Bearer {token}"}


async def run(cfg: Config) -> Result:
    """One chaos run; the broker and the services are always stopped at the end."""
    rng = random.Random(cfg.seed)
    result = Result()
    prefix = f"chaos{uuid.uuid4().hex[:6]}."
    result.prefix = prefix
    topics = Topics(prefix)
    bootstrap = f"127.0.0.1:{cfg.kafka_port}"
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="fengqiao-chaos-"))
    extra = {
        "FENGQIAO_KAFKA_BOOTSTRAP": bootstrap,
        "FENGQIAO_RELAY_INTERVAL_S": "0.2",
        "FENGQIAO_LOG_LEVEL": "WARNING",
    }
    if cfg.db == "pg":
        extra |= await pg_databases(prefix)
    stack = ChaosStack(
        prefix=prefix,
        workdir=workdir,
        extra_env=extra,
        instances=cfg.instances if cfg.db == "pg" else 1,
    )
    broker_reset(cfg)
    broker_start(cfg)
    hogs = start_hogs(cfg.cpu_hogs)
    try:
        stack.creds = stack.seed()
        keys = api_keys(stack.creds)
        admin = admin_header(stack.env())
        stack.start()
        reports = make_reports(cfg.reports, rng)
        load_s = cfg.reports / cfg.rate
        stop = asyncio.Event()
        staff = stack.creds["staff"]
        live_cases: dict[str, str] = {}
        wanted = (
            {r["source_ref"] for r in reports[:: cfg.accept_every]} if cfg.accept_every else set()
        )
        accepted: set[str] = set()
        supervisor = asyncio.create_task(supervise(stack, result, stop))
        submit = asyncio.create_task(submit_all(stack, keys, reports, cfg.rate, live_cases))
        faults = [
            asyncio.create_task(killer(stack, cfg, rng, result)),
            asyncio.create_task(outage(cfg, result, after_s=load_s / 3)),
            # under load, before the broker outage: consumers and HTTP writes meet it
            asyncio.create_task(
                db_outage(cfg, result, after_s=max(1.0, load_s / 3 - cfg.db_outage_s - 2))
            ),
        ]
        accepting = asyncio.create_task(
            acceptor(stack, staff, admin, live_cases, wanted, accepted, stop)
        )
        cases = await submit
        await asyncio.gather(*faults)
        stop.set()
        await supervisor
        try:
            async with asyncio.timeout(cfg.drain_timeout_s):
                await accepting
        except TimeoutError:
            result.notes.append(f"{len(wanted - accepted)} cases could not be signed for")
        await poison_and_replay(bootstrap, topics, cfg, rng, result)
        t0 = time.monotonic()
        deadline = t0 + cfg.drain_timeout_s
        while True:
            settled = await check(
                stack, bootstrap, topics, prefix, cases, reports, result, admin, wanted
            )
            if settled or time.monotonic() > deadline:
                break
            await asyncio.sleep(3)
        result.drain_s = time.monotonic() - t0
        records = await read_all(bootstrap, [getattr(topics, n) for n in GROUPS_TOPICS])
        result.records = dict(Counter(r.topic.removeprefix(prefix) for r in records))
        result.events = distinct_events(records, prefix)
        over = {
            t: f"{n} records for {result.events.get(t, 0)} events"
            for t, n in result.records.items()
            if n > 2 * result.events.get(t, 0)
        }
        result.topics_over_2x = len(over)
        if over:
            result.found.append(f"  topics over 2x: {json.dumps(over, sort_keys=True)}")
        if stack.dead():
            result.notes.append(f"exited on their own: {stack.dead()}")
        result.db_waits = sum(
            log.read_text(errors="replace").count("database unavailable")
            for log in workdir.glob("*.log")
        )
        if not result.ok():
            result.notes.append(f"service logs: {workdir}")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        stack.stop()
        broker_stop(cfg)
        if cfg.db == "pg":
            await pg_drop(prefix)
    return result


GROUPS_TOPICS = sorted({t for ts in GROUPS.values() for t in ts} | {"trail"})


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reports", type=int, default=Config.reports)
    p.add_argument("--rate", type=float, default=Config.rate)
    p.add_argument("--kills", type=int, default=Config.kills)
    p.add_argument("--broker-outage", type=float, default=Config.broker_outage_s)
    p.add_argument("--db-outage", type=float, default=Config.db_outage_s, help="with --db pg")
    p.add_argument("--poison-rate", type=float, default=Config.poison_rate)
    p.add_argument("--kafka-port", type=int, default=Config.kafka_port)
    p.add_argument("--controller-port", type=int, default=Config.controller_port)
    p.add_argument("--seed", type=int, default=Config.seed)
    p.add_argument("--cpu-hogs", type=int, default=0, help="CPU-bound neighbour processes")
    p.add_argument("--db", choices=("sqlite", "pg"), default=os.environ.get("DB") or "sqlite")
    p.add_argument("--instances", type=int, default=2, help="of each service, with --db pg")
    a = p.parse_args(argv)
    cfg = Config(
        reports=a.reports,
        rate=a.rate,
        kills=a.kills,
        broker_outage_s=a.broker_outage,
        db_outage_s=a.db_outage,
        poison_rate=a.poison_rate,
        kafka_port=a.kafka_port,
        controller_port=a.controller_port,
        seed=a.seed,
        db=a.db,
        instances=a.instances,
        cpu_hogs=a.cpu_hogs,
    )
    result = asyncio.run(run(cfg))
    print(result.report())
    return 0 if result.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
