"""Bench reports: the sample reports varied so none merges with another (new refs, phones, IDs).

Half go to intake's HTTP API as canonical JSON, half onto the source topics as the native
records of each source system (shapes in services/intake/adapters.py and docs/intake.md).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from bench.common import SAMPLES

BEIJING = timezone(timedelta(hours=8))
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
ROLE_110 = {"applicant": "申请人", "respondent": "被申请人"}


@dataclass(frozen=True)
class BenchReport:
    """One report to submit: by `http` (canonical JSON) or `kafka` (native record bytes)."""

    via: str
    source: str
    source_ref: str
    body: bytes


def samples() -> list[dict[str, Any]]:
    """The sample reports without their evaluation labels."""
    rows = [json.loads(x) for x in SAMPLES.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [{k: v for k, v in r.items() if k not in ("expected", "why")} for r in rows]


_USED: set[str] = set()  # phones and ID numbers handed out in this process: never merge


def _unique(make: Any) -> str:
    while (value := make()) in _USED:
        pass
    _USED.add(value)
    return str(value)


def _phone(rng: random.Random) -> str:
    return _unique(lambda: rng.choice(("13", "15", "17", "18")) + f"{rng.randrange(10**9):09d}")


def _id_number(rng: random.Random) -> str:
    def make() -> str:
        born = datetime(1950, 1, 1) + timedelta(days=rng.randrange(50 * 365))
        body = f"522731{born:%Y%m%d}{rng.randrange(1000):03d}"
        return body + ID_CHECK[sum(int(c) * w for c, w in zip(body, ID_WEIGHTS, strict=True)) % 11]

    return _unique(make)


def _vary_person(p: dict[str, Any] | None, rng: random.Random, i: int) -> dict[str, Any] | None:
    if not p:
        return p
    q = dict(p)
    if q.get("phone"):
        q["phone"] = _phone(rng)
    if q.get("id_number"):
        q["id_number"] = _id_number(rng)
    if q.get("name") and p.get("phone") and len(q["name"]) <= 4:  # persons, not organisations
        q["name"] = q["name"][:1] + "某" + "甲乙丙丁戊己庚辛壬癸"[i % 10]
    return q


def vary(report: dict[str, Any], ref: str, rng: random.Random, i: int) -> dict[str, Any]:
    """A new canonical report from a sample: fresh ref, parties, phones and a current time."""
    r: dict[str, Any] = json.loads(json.dumps(report))
    r["source_ref"] = ref
    r["reported_at"] = datetime.now(BEIJING).replace(microsecond=0).isoformat()
    r["reporter"] = _vary_person(r.get("reporter"), rng, i)
    r["parties"] = [_vary_person(p, rng, i) for p in r.get("parties") or []]
    return r


def to_native(r: dict[str, Any]) -> bytes:
    """The canonical report as its source system would publish it."""
    loc = r.get("location") or {}
    rep = r.get("reporter") or {}
    parties = r.get("parties") or []
    when = r.get("reported_at") or datetime.now(UTC).isoformat()
    if r["source"] == "110":
        rec: dict[str, Any] = {
            "jjdbh": r["source_ref"],
            "bjsj": when,
            "bjnr": r["text"],
            "jqlb": r.get("category"),
            "fadz": loc.get("address"),
            "wd": loc.get("lat"),
            "jd": loc.get("lon"),
            "bjrxm": rep.get("name"),
            "bjrdh": rep.get("phone"),
            "dsr": [
                {
                    "xm": p.get("name"),
                    "dh": p.get("phone"),
                    "sfzh": p.get("id_number"),
                    "js": ROLE_110.get(p.get("role") or "", "当事人"),
                }
                for p in parties
            ],
        }
    elif r["source"] == "12345":
        applicant = next((p for p in parties if p.get("role") == "applicant"), rep)
        rec = {
            "gdbh": r["source_ref"],
            "slsj": when,
            "sqnr": r["text"],
            "sqlx": "求助",
            "fl": r.get("category"),
            "jjcd": "一般",
            "sjdz": loc.get("address"),
            "sqr": applicant.get("name"),
            "lxdh": applicant.get("phone"),
            "zjhm": applicant.get("id_number"),
            "bsqr": [
                {
                    "mc": p.get("name"),
                    "dh": p.get("phone"),
                    "zjhm": p.get("id_number"),
                    "js": "被申请人",
                }
                for p in parties
                if p.get("role") != "applicant"
            ],
        }
    else:
        rec = {
            "note_id": r["source_ref"],
            "created_at": when,
            "content": r["text"],
            "category": r.get("category"),
            "address": loc.get("address"),
            "grid_code": loc.get("grid_code"),
            "lat": loc.get("lat"),
            "lon": loc.get("lon"),
            "worker": {"name": rep.get("name"), "phone": rep.get("phone")},
            "parties": parties,
        }
    return json.dumps(rec, ensure_ascii=False).encode()


def generate(n: int, run_tag: str, seed: int = 7) -> list[BenchReport]:
    """n varied reports, alternating HTTP and Kafka; grid notes without a grid code go by HTTP."""
    rng = random.Random(f"{seed}-{run_tag}")  # fresh phones and IDs per run: no merging
    base = samples()
    out: list[BenchReport] = []
    for i in range(n):
        s = base[i % len(base)]
        ref = f"B{run_tag}-{i:07d}"
        r = vary(s, ref, rng, i)
        via = "kafka" if i % 2 else "http"
        if (
            via == "kafka"
            and s["source"] == "grid"
            and not (s.get("location") or {}).get("grid_code")
        ):
            via = "http"
        body = to_native(r) if via == "kafka" else json.dumps(r, ensure_ascii=False).encode()
        out.append(BenchReport(via, s["source"], ref, body))
    return out
