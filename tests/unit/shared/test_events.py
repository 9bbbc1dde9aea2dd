"""Envelope, registry and upcasters."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from shared.contracts import REGISTRY, CaseClosed
from shared.events import Envelope, EventDecodeError, EventRegistry


class V2(BaseModel):
    case_id: str
    outcome: str
    closed_by: str


def test_envelope_round_trip_keeps_every_field() -> None:
    env = REGISTRY.event(
        CaseClosed(case_id="c1", outcome="honoured"),
        event_type="case.closed",
        producer="followup",
        case_id="c1",
    )
    back = Envelope.from_bytes(env.to_bytes())
    assert back == env
    assert back.schema_version == 1 and back.causation_id is None
    assert back.occurred_at.tzinfo is not None


def test_causation_and_correlation_follow_the_cause() -> None:
    cause = REGISTRY.event(
        CaseClosed(case_id="c1", outcome="x"), event_type="case.closed", producer="a", case_id="c1"
    )
    child = REGISTRY.event(
        CaseClosed(case_id="c1", outcome="y"),
        event_type="case.closed",
        producer="b",
        case_id="c1",
        cause=cause,
    )
    assert child.causation_id == cause.event_id
    assert child.correlation_id == cause.correlation_id


def test_old_versions_are_upcast_to_the_current_model() -> None:
    reg = EventRegistry()
    reg.register("case.closed", V2, version=2)
    reg.register_upcaster("case.closed", 1, lambda p: {**p, "closed_by": "system"})
    old = Envelope(
        event_type="case.closed",
        schema_version=1,
        producer="x",
        case_id="c",
        correlation_id="k",
        payload={"case_id": "c", "outcome": "ok"},
    )
    parsed = reg.parse(old)
    assert isinstance(parsed, V2) and parsed.closed_by == "system"


@pytest.mark.parametrize("raw", [b"not json", b"{}", b'{"event_type": 3}', b"\xff\xfe"])
def test_garbage_is_a_decode_error(raw: bytes) -> None:
    with pytest.raises(EventDecodeError):
        Envelope.from_bytes(raw)


def test_unknown_type_and_future_version_are_rejected() -> None:
    env = Envelope(event_type="nope", producer="x", case_id="c", correlation_id="k", payload={})
    with pytest.raises(EventDecodeError, match="unknown event_type"):
        REGISTRY.parse(env)
    env = Envelope(
        event_type="case.closed",
        schema_version=9,
        producer="x",
        case_id="c",
        correlation_id="k",
        payload={},
    )
    with pytest.raises(EventDecodeError, match="newer"):
        REGISTRY.parse(env)


def test_payload_errors_name_the_field() -> None:
    env = Envelope(
        event_type="case.closed",
        producer="x",
        case_id="c",
        correlation_id="k",
        payload={"case_id": "c"},
    )
    with pytest.raises(EventDecodeError, match="outcome"):
        REGISTRY.parse(env)


def test_new_ids_are_distinct_uuid4_hex() -> None:
    import uuid

    from shared.events import new_id

    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for i in ids:
        u = uuid.UUID(i)
        assert (u.hex, u.version, u.variant) == (i, 4, uuid.RFC_4122)


def test_event_ids_are_distinct_uuid7_hex_in_time_order() -> None:
    import time
    import uuid

    from shared.events import new_event_id

    before = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for i in ids:
        u = uuid.UUID(i)
        assert (u.hex, u.version, u.variant) == (i, 7, uuid.RFC_4122)
        assert before <= int(i[:12], 16) <= after  # the first 48 bits: Unix milliseconds
    time.sleep(0.002)
    assert new_event_id() > max(ids)  # a later millisecond sorts after every earlier id
