"""JSON logging that never prints personal data: every line passes through redaction."""

from __future__ import annotations

import json
import logging
import sys
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


class RedactingJsonFormatter(logging.Formatter):
    """One JSON object per line; phone/ID patterns masked; personal fields dropped."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
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


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send every logger through the redacting JSON formatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingJsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel("WARNING")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
