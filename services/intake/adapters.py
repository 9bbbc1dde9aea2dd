"""Native records of the source systems (docs/intake.md) → canonical report dicts.

Errors name the field and what is wrong with it, never its value: they end up in
dead-letter headers and logs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from shared.events import EventDecodeError

BEIJING = timezone(timedelta(hours=8))
PARTY_ROLES = {
    "申请人": "applicant",
    "被申请人": "respondent",
    "applicant": "applicant",
    "respondent": "respondent",
    "当事人": None,
}
APPEAL_KINDS = ("咨询", "求助", "投诉", "建议", "举报")
URGENCIES = ("一般", "紧急", "特急")


class NativeRecordError(EventDecodeError):
    """A native record that cannot be adapted; dead-lettered at once (retrying cannot help)."""


def _obj(raw: bytes, source: str) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise NativeRecordError(f"{source} record: not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise NativeRecordError(f"{source} record: not a JSON object")
    return data


def _text(rec: dict[str, Any], key: str, source: str, *, required: bool = False) -> str | None:
    v = rec.get(key)
    if v is None or v == "":
        if required:
            raise NativeRecordError(f"{source} record: field '{key}' missing")
        return None
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str):
        raise NativeRecordError(f"{source} record: field '{key}' must be a string")
    return v


def _time(rec: dict[str, Any], key: str, source: str) -> str | None:
    """ISO 8601 with an offset, or 'YYYY-MM-DD HH:MM:SS' which these systems mean as +08:00."""
    v = _text(rec, key, source)
    if v is None:
        return None
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise NativeRecordError(f"{source} record: field '{key}' is not a timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=BEIJING)
    return dt.isoformat()


def _float(rec: dict[str, Any], key: str, source: str) -> float | None:
    v = rec.get(key)
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        raise NativeRecordError(f"{source} record: field '{key}' is not a number") from None


def _parties(
    items: Any, key: str, source: str, names: tuple[str, str, str, str]
) -> list[dict[str, Any]]:
    """Map a list of native party objects using (name, phone, id, role) key names."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise NativeRecordError(f"{source} record: field '{key}' must be a list")
    out = []
    for i, p in enumerate(items):
        if not isinstance(p, dict):
            raise NativeRecordError(f"{source} record: '{key}[{i}]' must be an object")
        n, ph, idn, role = names
        raw_role = _text(p, role, source)
        out.append(
            {
                "name": _text(p, n, source),
                "phone": _text(p, ph, source),
                "id_number": _text(p, idn, source),
                "role": PARTY_ROLES.get(raw_role, raw_role) if raw_role else None,
            }
        )
    return out


def adapt_110(raw: bytes) -> dict[str, Any]:
    """A 110 接处警 call record."""
    r = _obj(raw, "110")
    caller = {
        "name": _text(r, "bjrxm", "110"),
        "phone": _text(r, "bjrdh", "110"),
        "role": "citizen",
    }
    parties = _parties(r.get("dsr"), "dsr", "110", ("xm", "dh", "sfzh", "js"))
    if not parties and (caller["name"] or caller["phone"]):
        parties = [{"name": caller["name"], "phone": caller["phone"], "role": "applicant"}]
    return {
        "source": "110",
        "source_ref": _text(r, "jjdbh", "110", required=True),
        "reported_at": _time(r, "bjsj", "110"),
        "text": _text(r, "bjnr", "110", required=True),
        "category": _text(r, "jqlb", "110"),
        "location": {
            "address": _text(r, "fadz", "110"),
            "lat": _float(r, "wd", "110"),
            "lon": _float(r, "jd", "110"),
        },
        "reporter": caller,
        "parties": parties,
    }


def adapt_12345(raw: bytes) -> dict[str, Any]:
    """A 12345 hotline work order (工单)."""
    r = _obj(raw, "12345")
    kind = _text(r, "sqlx", "12345")
    if kind is not None and kind not in APPEAL_KINDS:
        raise NativeRecordError(
            f"12345 record: field 'sqlx' must be one of {'/'.join(APPEAL_KINDS)}"
        )
    urgency = _text(r, "jjcd", "12345")
    if urgency is not None and urgency not in URGENCIES:
        raise NativeRecordError(f"12345 record: field 'jjcd' must be one of {'/'.join(URGENCIES)}")
    parts = [
        p
        for p in (kind, _text(r, "fl", "12345"), urgency if urgency and urgency != "一般" else None)
        if p
    ]
    caller = {
        "name": _text(r, "sqr", "12345"),
        "phone": _text(r, "lxdh", "12345"),
        "role": "citizen",
    }
    parties = []
    if caller["name"] or caller["phone"]:
        parties.append(
            {
                "name": caller["name"],
                "phone": caller["phone"],
                "id_number": _text(r, "zjhm", "12345"),
                "role": "applicant",
            }
        )
    for p in _parties(r.get("bsqr"), "bsqr", "12345", ("mc", "dh", "zjhm", "js")):
        parties.append({**p, "role": p["role"] or "respondent"})
    return {
        "source": "12345",
        "source_ref": _text(r, "gdbh", "12345", required=True),
        "reported_at": _time(r, "slsj", "12345"),
        "text": _text(r, "sqnr", "12345", required=True),
        "category": "-".join(parts) or None,
        "location": {"address": _text(r, "sjdz", "12345")},
        "reporter": caller,
        "parties": parties,
    }


def adapt_grid(raw: bytes) -> dict[str, Any]:
    """A grid worker's field note (网格员 / 联户长 app)."""
    r = _obj(raw, "grid")
    worker = r.get("worker") or {}
    if not isinstance(worker, dict):
        raise NativeRecordError("grid record: field 'worker' must be an object")
    return {
        "source": "grid",
        "source_ref": _text(r, "note_id", "grid", required=True),
        "reported_at": _time(r, "created_at", "grid"),
        "text": _text(r, "content", "grid", required=True),
        "category": _text(r, "category", "grid"),
        "location": {
            "address": _text(r, "address", "grid"),
            "grid_code": _text(r, "grid_code", "grid", required=True),
            "lat": _float(r, "lat", "grid"),
            "lon": _float(r, "lon", "grid"),
        },
        "reporter": {
            "name": _text(worker, "name", "grid"),
            "phone": _text(worker, "phone", "grid"),
            "role": "grid_worker",
        },
        "parties": _parties(
            r.get("parties"), "parties", "grid", ("name", "phone", "id_number", "role")
        ),
    }


ADAPTERS: dict[str, Callable[[bytes], dict[str, Any]]] = {
    "110": adapt_110,
    "12345": adapt_12345,
    "grid": adapt_grid,
}
