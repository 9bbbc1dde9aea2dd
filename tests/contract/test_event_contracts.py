"""Event contracts: every registered type has a sample that parses, and every consumed type has
a producer and a consumer subscribed on the topic it is published to."""

from __future__ import annotations

import importlib
import re
from types import SimpleNamespace
from typing import Any

import pytest

import shared.staff_status  # noqa: F401 - registers staff.changed
from shared.contracts import REGISTRY
from shared.events import Envelope
from shared.topics import Topics
from tests.conftest import REPO

NOW = "2026-11-20T00:15:00Z"
SAMPLES: dict[str, dict[str, Any]] = {
    "report.received": {
        "case_id": "c1",
        "source": "12345",
        "source_ref": "GD1",
        "received_at": NOW,
        "text": "噪音扰民",
        "parties": [{"role": "applicant", "kind": "person", "display": "王*"}],
    },
    "report.repeated": {
        "case_id": "c1",
        "source": "110",
        "source_ref": "J2",
        "repeat_count": 2,
        "text": "又来了",
    },
    "case.triaged": {
        "case_id": "c1",
        "source": "12345",
        "source_ref": "GD1",
        "dispute_type": "neighbour",
        "severity": "low",
        "channel": "people",
        "tier": "grid",
        "rule_id": "R7",
        "rules_version": "v",
        "sign_for_due": NOW,
        "mediation_due": NOW,
    },
    "case.returned": {
        "case_id": "c1",
        "channel": "people",
        "reason": "x",
        "return_count": 1,
        "excluded_channels": ["people"],
    },
    "case.agreed": {
        "case_id": "c1",
        "agreement_id": "a1",
        "terms": "赔偿",
        "agreed_at": NOW,
        "channel": "people",
        "tier": "grid",
    },
    "case.reopened": {"case_id": "c1", "reason": "未履行", "visit_id": "v1"},
    "case.closed": {"case_id": "c1", "outcome": "honoured"},
    "supervision.raised": {
        "case_id": "c1",
        "kind": "sign_for_overdue",
        "tier": "town",
        "channel": "people",
        "due_at": NOW,
        "raised_at": NOW,
    },
    "warning.raised": {
        "warning_id": "w1",
        "kind": "repeat_party",
        "key": "c1",
        "tier": "town",
        "area_code": "522731001",
        "case_ids": ["c0", "c1"],
        "facts": {"party": "b0489a213e48", "cases_in_window": 3},
        "raised_at": NOW,
    },
    "warning.cleared": {
        "warning_id": "w1",
        "kind": "repeat_party",
        "key": "c1",
        "case_ids": ["c0", "c1"],
        "reason": "2 cases of this party within 90 days",
        "cleared_at": NOW,
    },
    "warning.acknowledged": {
        "warning_id": "w1",
        "kind": "repeat_party",
        "key": "c1",
        "case_ids": ["c0", "c1"],
        "acknowledged_by": "user:coord-7",
        "note": "已约谈当事人",
        "acknowledged_at": NOW,
    },
    "trail.appended": {
        "case_id": "c1",
        "at": NOW,
        "actor": "system:triage",
        "action": "triage",
        "from_status": "received",
        "to_status": "triaged",
    },
    # not about a case: the staff id is the Kafka key (shared.staff_status)
    "staff.changed": {
        "staff_id": "med-1",
        "active": False,
        "token_version": 2,
        "changed_at": NOW,
    },
}
SERVICES = ("intake", "triage", "mediation", "followup")


def test_every_registered_event_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(REGISTRY._models)


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_samples_parse_through_the_wire_format(event_type: str) -> None:
    env = Envelope(
        event_type=event_type,
        producer="contract",
        case_id="c1",
        correlation_id="k",
        payload=SAMPLES[event_type],
    )
    parsed = REGISTRY.parse(Envelope.from_bytes(env.to_bytes()))
    dumped = parsed.model_dump(exclude_unset=True)
    assert dumped.get("case_id", dumped.get("staff_id", dumped.get("key"))) in ("c1", "med-1")


class _RecordingRuntime:
    """Stands in for shared.runtime.Runtime to see what a service subscribes to."""

    def __init__(self) -> None:
        self.topics = Topics("")
        self.subscriptions: list[tuple[tuple[str, ...], str]] = []
        # what a projection wired in register() keeps (triage's scope: its causal gate)
        self.delivery = SimpleNamespace(gated=set())

    def on_events(self, topics: list[str], group: str, handlers: dict[str, Any]) -> None:
        self.subscriptions += [(tuple(topics), e) for e in handlers]

    def on_messages(
        self, topics: list[str], group: str, handler: Any, batch_handler: Any = None
    ) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return None


def _consumed() -> set[tuple[tuple[str, ...], str]]:
    """(topics a consumer group reads, an event type it handles)."""
    out: set[tuple[tuple[str, ...], str]] = set()
    for svc in SERVICES:
        mod = importlib.import_module(f"services.{svc}.consumers")
        rt = _RecordingRuntime()
        handlers = _AnyHandlers()
        mod.register(rt, *([handlers] * (mod.register.__code__.co_argcount - 1)))
        out |= set(rt.subscriptions)
    return out


class _AnyHandlers:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


_EMIT = re.compile(r"""emit\(\s*(?:self\.|rt\.|self\.rt\.)?topics\.(\w+)\s*,\s*["']([\w.]+)["']""")


def _produced() -> set[tuple[str, str]]:
    topics = Topics("")
    out: set[tuple[str, str]] = set()
    for path in (REPO / "services").rglob("*.py"):
        for attr, event_type in _EMIT.findall(path.read_text(encoding="utf-8")):
            out.add((getattr(topics, attr), event_type))
    out |= {(topics.trail, "trail.appended")}  # Tx.transition
    return out


def test_every_consumed_event_is_produced_on_a_topic_its_group_reads() -> None:
    consumed, produced = _consumed(), _produced()
    missing = {(topics, e) for topics, e in consumed if not any((t, e) in produced for t in topics)}
    assert consumed and not missing, f"consumed but never produced there: {missing}"


def test_every_produced_event_has_a_consumer() -> None:
    consumed, produced = _consumed(), _produced()
    heard = {(t, e) for topics, e in consumed for t in topics}
    unheard = {p for p in produced if p not in heard}
    # supervision notices go to coordinators' dashboards through the trail as well; warnings
    # are for dashboards and the console (GET /v1/warnings), no service consumes them
    assert unheard <= {
        (Topics("").mediation, "supervision.raised"),
        (Topics("").followup, "case.closed"),
        (Topics("").warnings, "warning.raised"),
        (Topics("").warnings, "warning.cleared"),
        (Topics("").warnings, "warning.acknowledged"),
    }, unheard
