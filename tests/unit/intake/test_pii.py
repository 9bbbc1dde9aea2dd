"""PIPL: recognisable fake phones, ID numbers and names never appear in logs or the DB file."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from services.intake.settings import IntakeSettings
from shared.logs import configure_logging
from tests.unit.intake.conftest import make_settings, start_intake
from tests.unit.intake.natives import CALL_110, NOTE_GRID, ORDER_12345, raw

PHONES = ["13912345678", "15187654321", "18600001234"]
IDS = ["110101199003071234", "52273119851111001X"]
NAMES = ["欧阳铁柱", "司马翠花"]
ADDRESS = "南溪县城关镇机密巷99号"


def planted(tmp: str) -> list[str]:
    return [p for p in PHONES + IDS + NAMES + [ADDRESS] if p in tmp]


async def test_personal_data_is_absent_from_logs_and_database(tmp_path: Path) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("DEBUG", stream=stream)
    settings: IntakeSettings = make_settings(tmp_path)
    try:
        async for h in start_intake(settings):
            people = [
                {"name": NAMES[0], "phone": PHONES[0], "id_number": IDS[0], "role": "applicant"},
                {"name": NAMES[1], "phone": PHONES[1], "id_number": IDS[1], "role": "respondent"},
            ]
            text = f"{NAMES[0]}（电话{PHONES[0]}，身份证{IDS[0]}）称与邻居争执。"
            base = {
                "text": text,
                "parties": people,
                "location": {"address": ADDRESS},
                "reporter": {"name": NAMES[0], "phone": PHONES[2]},
            }
            for src, ref in (("110", "P-1"), ("12345", "P-2"), ("grid", "P-3")):
                r = await h.post({"source": src, "source_ref": ref, **base})
                assert r.status_code == 202 and not planted(r.text)
            batch = await h.client.post(
                "/v1/reports:batch",
                headers={"X-API-Key": h.keys["grid"]},
                json={
                    "reports": [
                        {"source": "grid", "source_ref": "P-4", **base},
                        {"source": "grid", "source_ref": "P-5", **base, "reported_at": "bad"},
                        {
                            "source": "grid",
                            "source_ref": "P-6",
                            **base,
                            "parties": [{"phone": PHONES[0] + "9"}],
                        },
                    ]
                },
            )
            assert not planted(batch.text)
            bad = await h.post(
                {
                    "source": "110",
                    "source_ref": "P-7",
                    **base,
                    "parties": [{"id_number": IDS[0] + "1"}],
                }
            )
            assert bad.status_code == 422 and not planted(bad.text)
            await h.publish_native(
                "110",
                raw(
                    CALL_110
                    | {
                        "jjdbh": "PK-1",
                        "bjrxm": NAMES[1],
                        "bjrdh": PHONES[1],
                        "bjnr": text.replace(NAMES[0], NAMES[1]),
                        "fadz": ADDRESS,
                    }
                ),
            )
            await h.publish_native(
                "12345", raw(ORDER_12345 | {"lxdh": PHONES[2], "zjhm": IDS[1], "sqr": NAMES[0]})
            )
            await h.publish_native("grid", raw(NOTE_GRID | {"parties": people}))
            await h.publish_native(
                "110",
                raw(CALL_110 | {"jjdbh": "PK-BAD", "bjrdh": PHONES[0] + "x", "bjrxm": NAMES[0]}),
            )
            o311 = await h.client.post(
                "/open311/v2/requests.json",
                data={
                    "api_key": h.keys["12345"],
                    "service_code": "neighbour",
                    "description": text,
                    "first_name": "铁柱",
                    "last_name": "欧阳",
                    "phone": PHONES[0],
                    "address_string": ADDRESS,
                },
            )
            assert o311.status_code == 200 and not planted(o311.text)
            await h.settle()
            for src, ref in (("110", "P-1"), ("110", "PK-1"), ("grid", "P-3")):
                g = await h.client.get(
                    f"/v1/reports/{src}/{ref}", headers={"X-API-Key": h.keys[src]}
                )
                assert g.status_code == 200 and not planted(g.text)
            dlq = h.bus.log["source.110.reports.dlq"]
            assert len(dlq) == 1
            assert not planted(json.dumps([(k, v.decode()) for k, v in dlq[0].headers]))
            events = [
                m.value.decode()
                for topic in (h.topics.reports, h.topics.trail)
                for m in h.bus.log[topic]
            ]
            assert events and not [
                e for e in events if any(p in e for p in PHONES + IDS + [ADDRESS])
            ]  # names may appear only in text
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    logs = stream.getvalue()
    assert '"message dead-lettered"' in logs  # the log was really captured
    assert planted(logs) == []
    found = planted_in_files(tmp_path)
    assert found and all(hits == [] for hits in found.values()), found


def planted_in_files(folder: Path) -> dict[str, list[str]]:
    """Which planted values each database file (main, WAL, shared memory) holds in clear."""
    out = {}
    for f in sorted(folder.glob("intake.db*")):
        data = f.read_bytes()
        out[f.name] = [p for p in PHONES + IDS + NAMES + [ADDRESS] if p.encode() in data]
    return out
