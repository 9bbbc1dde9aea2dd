"""Shared logging: repeated errors are logged once then counted; ids of the work in hand."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from shared.logs import RedactingJsonFormatter, RepeatFilter, log_context


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, FakeClock, logging.Logger]]:
    stream, clock = io.StringIO(), FakeClock()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingJsonFormatter())
    handler.addFilter(RepeatFilter(first_s=30, max_s=600, clock=clock))
    lib = logging.getLogger("aiokafka.test-ops")
    lib.addHandler(handler)
    lib.propagate = False
    yield stream, clock, lib
    lib.removeHandler(handler)
    lib.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_library_error_loop_is_logged_once_then_counted_with_backoff(
    captured: tuple[io.StringIO, FakeClock, logging.Logger],
) -> None:
    stream, clock, lib = captured
    start = clock.t
    for i in range(60 * 100):  # a minute of an error every 10 ms, arguments varying
        clock.t = start + i / 100
        lib.error("Unable connect to node with id %s: %s", 1, f"attempt {i}")
    out = lines(stream)
    assert [o.get("repeated") for o in out] == [None, 2999]  # at 0 s, at 30 s; next at 90 s
    clock.t = start + 90
    lib.error("Unable connect to node with id %s: %s", 1, "again")
    assert lines(stream)[-1]["repeated"] == 2999
    clock.t += 601  # quiet for longer than max_s: the run is forgotten
    lib.error("Unable connect to node with id %s: %s", 1, "later")
    assert "repeated" not in lines(stream)[-1] and len(lines(stream)) == 4


def test_info_lines_and_distinct_errors_are_never_dropped(
    captured: tuple[io.StringIO, FakeClock, logging.Logger],
) -> None:
    stream, _clock, lib = captured
    app = logging.getLogger("fengqiao.test-ops")
    app.addHandler(lib.handlers[0])
    app.propagate = False
    app.setLevel(logging.INFO)
    try:
        for offset in range(5):
            app.error("message dead-lettered", extra={"offset": offset})
            app.info("handled")
        assert len(lines(stream)) == 10
        app.error("message dead-lettered", extra={"offset": 4})  # the very same line again
        assert len(lines(stream)) == 10
    finally:
        app.removeHandler(lib.handlers[0])
        app.propagate = True


def test_every_line_carries_the_ids_of_the_work_in_hand(
    captured: tuple[io.StringIO, FakeClock, logging.Logger],
) -> None:
    stream, _clock, lib = captured
    with log_context(correlation_id="corr-1", trace_id="a" * 32):
        lib.warning("inside")
    lib.warning("outside")
    inside, outside = lines(stream)
    assert inside["correlation_id"] == "corr-1" and inside["trace_id"] == "a" * 32
    assert "correlation_id" not in outside and "trace_id" not in outside
