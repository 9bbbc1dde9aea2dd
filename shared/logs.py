"""JSON logging that never prints personal data, never floods, and names the request it serves.

- Every line passes through redaction (`RedactingJsonFormatter`).
- A run of repeated warnings or errors (a broker outage makes aiokafka's retry loops log several
  per millisecond) is logged once, then counted, and reported again after a quiet interval that
  doubles each time (`RepeatFilter`).
- Every line carries the `correlation_id` and `trace_id` of the event or request being handled
  (context variables set by the consumer dispatch and the HTTP middleware).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.pii import redact_text

_STD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# Field names whose values are personal data: dropped, whatever a caller passes.
_PERSONAL_KEYS = {
    "name",
    "phone",
    "id_number",
    "address",
    "text",
    "parties",
    "reporter",
    "contact",
    "body",
    "payload",
}
# Loggers of libraries whose retry loops log the same line with varying arguments.
LIBRARY_LOGGERS = ("aiokafka", "kafka")

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
trace_id_var: ContextVar[str | None] = ContextVar("trace_id", default=None)


@contextmanager
def log_context(correlation_id: str | None = None, trace_id: str | None = None) -> Iterator[None]:
    """Within the block every log line carries these ids (unset ones keep the outer value)."""
    tokens = []
    if correlation_id is not None:
        tokens.append((correlation_id_var, correlation_id_var.set(correlation_id)))
    if trace_id is not None:
        tokens.append((trace_id_var, trace_id_var.set(trace_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class RedactingJsonFormatter(logging.Formatter):
    """One JSON object per line; phone/ID patterns masked; personal fields dropped."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render a record."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
        if self.service:
            out["service"] = self.service
        correlation_id, trace_id = correlation_id_var.get(), trace_id_var.get()
        if correlation_id:
            out["correlation_id"] = correlation_id
        if trace_id:
            out["trace_id"] = trace_id
        for k, v in vars(record).items():
            if k in _STD or k.startswith("_"):
                continue
            out[k] = (
                "[redacted]"
                if k in _PERSONAL_KEYS
                else (redact_text(v) if isinstance(v, str) else v)
            )
        if record.exc_info and record.exc_info[0] is not None:
            out["exc"] = record.exc_info[0].__name__  # no message: it may quote input
        return json.dumps(out, ensure_ascii=False, default=str)


@dataclass
class _Run:
    next_at: float
    interval: float
    last_seen: float
    dropped: int = 0


class RepeatFilter(logging.Filter):
    """Let the first of a run of repeated warnings/errors through, count the rest.

    Repeats are records of one logger and level with the same message template (libraries such
    as aiokafka, whose arguments vary from retry to retry) or the same message and fields (ours).
    The same record passes again only once its interval has run out — `first_s`, then twice as
    long each time up to `max_s` — carrying `repeated`, how many were dropped in between. A run
    that stays quiet for `max_s` is forgotten: its next record passes at once.
    """

    def __init__(
        self,
        first_s: float = 30.0,
        max_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.first_s, self.max_s, self.clock = first_s, max_s, clock
        self._runs: dict[tuple[Any, ...], _Run] = {}
        self._lock = threading.Lock()

    def _key(self, record: logging.LogRecord) -> tuple[Any, ...]:
        if record.name.startswith(LIBRARY_LOGGERS):
            return (record.name, record.levelno, str(record.msg))
        extras = sorted(
            (k, repr(v)) for k, v in vars(record).items() if k not in _STD and k != "repeated"
        )
        return (record.name, record.levelno, record.getMessage(), tuple(extras))

    def filter(self, record: logging.LogRecord) -> bool:
        """True when the record should be written."""
        if record.levelno < logging.WARNING:
            return True
        key, now = self._key(record), self.clock()
        with self._lock:
            run = self._runs.get(key)
            if run is None or now - run.last_seen > self.max_s:
                if len(self._runs) > 10_000:  # many distinct lines: not a loop, start afresh
                    self._runs.clear()
                self._runs[key] = _Run(now + self.first_s, self.first_s, now)
                return True
            run.last_seen = now
            if now < run.next_at:
                run.dropped += 1
                return False
            if run.dropped:
                record.repeated = run.dropped
            run.interval = min(run.interval * 2, self.max_s)
            run.next_at, run.dropped = now + run.interval, 0
            return True


def configure_logging(level: str = "INFO", stream: Any = None, service: str | None = None) -> None:
    """Send every logger through the repeat filter and the redacting JSON formatter."""
    # what the formatter never writes is not gathered either (the logging HOWTO's optimisations):
    # the caller's frame, thread and process of every record
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingJsonFormatter(service))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel("WARNING")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
