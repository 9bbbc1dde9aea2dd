"""The bench's own arithmetic: percentiles, when a case counts as done, latency to each end,
CPU and messages per case, and the lost/doubled/causal-order counts (tests/causal.py's check
on the trail, ledger and feedback a run saw). No broker, no services."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import percentile
from bench.e2e import (
    Progress,
    checks,
    cpu_per_case,
    faults,
    latency,
    per_case,
    record_time,
)
from tests.causal import case_life

REF = "WO-C"  # the source_ref tests/causal.py's receipt entry names
NOW = datetime.now(UTC).isoformat()


def life(case_id: str) -> list[dict[str, Any]]:
    """receive → triage → assign of one case, as JSON envelopes on the trail topic."""
    keep = ("receive", "triage", "assign")
    envs = [e for e in case_life(case_id) if e.payload["action"] in keep]
    return [json.loads(e.to_bytes()) for e in envs]


def feedback(env: dict[str, Any], ref: str = REF) -> dict[str, Any]:
    """intake's status message to the source for a trail entry."""
    return {"source_ref": ref, "status": env["payload"]["to_status"], "event_id": env["event_id"]}


def seen(
    p: Progress, trail: list[dict[str, Any]], case_id: str, ledger_order: list[int] | None = None
) -> None:
    """Trail, ledger rows and feedback of a case, each at t = 1, 2, 3 s."""
    for i, env in enumerate(trail):
        p.on_trail(env, 1.0 + i, {REF})
    order = ledger_order if ledger_order is not None else list(range(len(trail)))
    for k, i in enumerate(order):
        env = trail[i]
        when = datetime.fromtimestamp(time.time(), UTC).isoformat()
        row = (100 + k, case_id, k + 1, env["event_id"], env["payload"]["to_status"], when)
        p.on_ledger(row, 2.0 + i)
    for i, env in enumerate(trail):
        p.on_feedback(feedback(env), 3.0 + i, {REF})


def test_nearest_rank_percentiles() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_a_case_is_done_when_assigned_in_the_ledger_and_told_to_its_source() -> None:
    p = Progress()
    trail = life("C1")
    for i, env in enumerate(trail):
        p.on_trail(env, 1.0 + i, {REF})
    assert p.case_of_ref == {REF: "C1"} and p.assigned_at == {"C1": 3.0}
    assert not p.done(REF)
    for k, env in enumerate(trail):
        p.on_ledger((k + 1, "C1", k + 1, env["event_id"], env["payload"]["to_status"], NOW), 9.0)
    assert not p.done(REF)  # the source was not told yet
    for env in trail:
        p.on_feedback(feedback(env), 4.0, {REF})
    assert p.done(REF)


def test_ledger_rows_seen_before_the_trail_shows_their_case_still_count() -> None:
    """On a loaded machine the ledger poll can run ahead of the trail topic's reader: those
    rows count once the case is known, at the time the poll saw them (they were reported
    as lost when they were dropped)."""
    p = Progress()
    trail = life("C1")
    for k, env in enumerate(trail):
        p.on_ledger((k + 1, "C1", k + 1, env["event_id"], env["payload"]["to_status"], NOW), 2.0)
    p.on_ledger((9, "OTHER-RUN", 1, "e-x", "received", NOW), 2.0)  # never this run's case
    for i, env in enumerate(trail):
        p.on_trail(env, 5.0 + i, {REF})
    for env in trail:
        p.on_feedback(feedback(env), 6.0, {REF})
    assert p.done(REF)
    assert [seq for seq, _ in p.ledger["C1"]] == [1, 2, 3]
    assert p.ledger_at == {"C1": 2.0} and "OTHER-RUN" not in p.ledger


def test_a_clean_run_has_no_faults_and_three_latencies() -> None:
    p = Progress()
    seen(p, life("C1"), "C1")
    submitted = {REF: 0.5}
    assert checks(p, submitted) == {}
    assert latency(p, submitted, p.assigned_at, by_ref=False) == {
        "p50": 2500.0,
        "p95": 2500.0,
        "p99": 2500.0,
        "n": 1,
    }
    assert latency(p, submitted, p.feedback_at, by_ref=True)["p50"] == 4500.0
    assert latency(p, submitted, p.ledger_at, by_ref=False)["n"] == 1


def test_ledger_or_feedback_out_of_causal_order_is_counted() -> None:
    p = Progress()
    trail = life("C1")
    for i, env in enumerate(trail):
        p.on_trail(env, 1.0 + i, {REF})
    for k, i in enumerate([0, 2, 1]):  # the ledger chained `assigned` before `triaged`
        env = trail[i]
        p.on_ledger((k + 1, "C1", k + 1, env["event_id"], env["payload"]["to_status"], NOW), 2.0)
    for i in [1, 0, 2]:  # the source heard `triaged` before `received`
        p.on_feedback(feedback(trail[i]), 3.0, {REF})
    c = checks(p, {REF: 0.0})
    assert c == {"out of causal order (feedback)": 1, "out of causal order (ledger)": 1}
    assert faults(c) == 2


def test_trail_topic_order_is_reported_but_is_not_a_fault() -> None:
    p = Progress()
    trail = life("C1")
    p.on_trail(trail[0], 1.0, {REF})  # the receipt first: it names the ref
    p.on_trail(trail[2], 2.0, {REF})  # mediation's relay was quicker than triage's
    p.on_trail(trail[1], 3.0, {REF})
    for k, env in enumerate(trail):
        p.on_ledger((k + 1, "C1", k + 1, env["event_id"], env["payload"]["to_status"], NOW), 4.0)
        p.on_feedback(feedback(env), 5.0, {REF})
    c = checks(p, {REF: 0.0})
    assert c == {"trail topic order ≠ causal order (parked, not a fault)": 1}
    assert faults(c) == 0


def test_doubled_and_lost_reports_are_counted_and_resends_are_not() -> None:
    p = Progress()
    one, two = life("C1"), life("C2")
    seen(p, one, "C1")
    p.on_trail(two[0], 4.0, {REF})  # the same report opened a second case
    p.on_feedback(feedback(one[2]), 6.0, {REF})  # the relay sent `assigned` again
    p.on_trail(one[2], 7.0, {REF})  # and the trail entry again: the same event id
    c = checks(p, {REF: 0.0, "NEVER-SEEN": 0.0})
    assert c == {"doubled (a report opened >1 case)": 1, "lost (no case)": 1}
    assert p.feedback_copies == 1


def test_a_case_missing_from_the_ledger_is_lost_there() -> None:
    p = Progress()
    trail = life("C1")
    for i, env in enumerate(trail):
        p.on_trail(env, 1.0 + i, {REF})
        p.on_feedback(feedback(env), 2.0 + i, {REF})
    assert checks(p, {REF: 0.0}) == {"lost (not in the ledger)": 1}


def test_ledger_rows_read_twice_count_once() -> None:
    p = Progress()
    trail = life("C1")
    p.on_trail(trail[0], 1.0, {REF})
    row = (7, "C1", 1, trail[0]["event_id"], "received", "2026-11-30 10:00:00.000000")
    p.on_ledger(row, 5.0)
    p.on_ledger(row, 6.0)  # the poll's look-back window read it again
    assert p.ledger == {"C1": [(1, trail[0]["event_id"])]} and p.ledger_last_id == 7


def test_record_timestamps_land_on_the_monotonic_clock() -> None:
    now = time.monotonic()
    made = int(time.time() * 1000) - 1500  # produced 1.5 s ago
    assert abs(record_time(made, now) - (now - 1.5)) < 0.1
    assert record_time(made + 60_000, now) == now  # a clock ahead never makes it "future"
    assert record_time(-1, now) == now  # no timestamp: when it was read


def test_cpu_per_case_sums_the_four_services_only() -> None:
    cpu = {
        "intake": 1.0,
        "triage": 0.5,
        "mediation": 0.25,
        "followup": 0.25,
        "kafka broker": 9.0,
        "bench client": 9.0,
        "postgresql": 3.0,
    }
    per = cpu_per_case(cpu, 100)
    assert per["intake"] == 10.0 and per["kafka broker"] == 90.0
    assert per["postgresql"] == 30.0
    assert per["services"] == 20.0
    assert cpu_per_case(cpu, 0) == {}


def test_messages_per_case_by_topic() -> None:
    before = {"cases.trail": 30, "source.110.reports": 5}
    after = {"cases.trail": 330, "source.110.reports": 55, "reports.received": 100, "x.dlq": 0}
    m = per_case(before, after, 100)
    assert m["by_topic"] == {"cases.trail": 3.0, "reports.received": 1.0, "source.110.reports": 0.5}
    assert m["services"] == 4.0 and m["total"] == 4.5


def test_a_servers_cpu_counts_its_children_live_and_exited() -> None:
    """server_cpu_of: a process that starts busy children counts theirs, before and after they
    exit (a PostgreSQL backend per connection)."""
    import subprocess
    import sys

    from bench.stack import cpu_of, server_cpu_of

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    parent = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}])\n"  # a child that exits, reaped
        # a live child: burns, then waits for the test to close the stdin it shares
        f"p = subprocess.Popen([sys.executable, '-c', {burn!r} + 'import sys; sys.stdin.read()'])\n"
        "print('ready', flush=True)\n"
        "p.wait()\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while server_cpu_of(server.pid) < 0.55 and time.monotonic() < deadline:
            time.sleep(0.05)  # the live child burns its 0.3 s, then sleeps
        own = cpu_of(server.pid)
        total = server_cpu_of(server.pid)
        assert own < 0.2  # the parent itself only waited
        assert total >= 0.55  # both children's 0.3 s (the exited one's through cutime)
    finally:
        assert server.stdin is not None
        server.stdin.close()  # the live child ends, then its parent
        server.wait(timeout=10)
