"""Dead letters name the consumer group and handler; unknown event types are counted."""

from __future__ import annotations

import logging

import pytest

from shared.bus import OutgoingMessage
from shared.events import Envelope
from shared.topics import Topics
from tests.unit.followup.conftest import TOPICS, Ledger


async def test_a_poison_trail_record_names_the_group_and_handler(ledger: Ledger) -> None:
    bad = Envelope(
        event_type="trail.appended",
        producer="x",
        case_id="c1",
        correlation_id="k",
        payload={"case_id": "c1"},  # no status, no action: the payload does not parse
    )
    await ledger.bus.publish([OutgoingMessage(TOPICS.trail, "c1", bad.to_bytes())])
    await ledger.settle()
    [dead] = ledger.bus.log[Topics.dlq(TOPICS.trail)]
    headers = dict(dead.headers)
    assert headers["dlq.group"] == ledger.settings.group("followup.ledger").encode()
    assert headers["dlq.handler"] == b"services.followup.handlers.LedgerHandlers.trail_appended"
    assert dead.value == bad.to_bytes()


async def test_unknown_event_types_are_counted_and_logged_once_per_type(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    def unknown(event_type: str) -> bytes:
        return Envelope(
            event_type=event_type, producer="x", case_id="c", correlation_id="k", payload={}
        ).to_bytes()

    with caplog.at_level(logging.WARNING, logger="fengqiao.runtime"):
        await ledger.bus.publish(
            [
                OutgoingMessage(TOPICS.trail, "c", unknown("case.teleported")),
                OutgoingMessage(TOPICS.trail, "c", unknown("case.teleported")),
                OutgoingMessage(TOPICS.trail, "c", unknown("case.vanished")),
            ]
        )
        await ledger.settle()
    assert ledger.app.state.runtime.unknown_events == {"case.teleported": 2, "case.vanished": 1}
    logged = [r for r in caplog.records if r.getMessage() == "event of an unknown type skipped"]
    assert sorted(r.__dict__["event_type"] for r in logged) == ["case.teleported", "case.vanished"]
    assert ledger.bus.log[Topics.dlq(TOPICS.trail)] == []  # skipped, not dead-lettered
    # and counted on /metrics, per service, group and type
    scraped = (await ledger.client.get("/metrics")).text
    for event_type, n in (("case.teleported", 2), ("case.vanished", 1)):
        series = (
            f'fengqiao_unknown_events_total{{event_type="{event_type}",group="followup.ledger",'
            f'service="{ledger.settings.service_name}"}} {float(n)}'
        )
        assert series in scraped, series
