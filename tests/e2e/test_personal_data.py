"""Personal data never leaves in clear: after a whole case life on the real broker, the planted
phones, ID numbers, names and address appear in no database file, no log line and no record on
any of the run's Kafka topics — while the assigned mediator still reads them."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from shared.logs import RedactingJsonFormatter
from tests.conftest import BOOTSTRAP
from tests.e2e.conftest import System
from tests.e2e.test_case_lives import mediation_case, mediator_of, reach_agreement, submit

pytestmark = pytest.mark.kafka

PHONE_A, PHONE_B = "13987654321", "18611112222"
ID_A = "52273119800101123X"
NAME_A, NAME_B = "欧阳春花", "司马铁柱"
ADDRESS = "南溪县沙坪镇河口村七组十八号"
PLANTED = [PHONE_A, PHONE_B, ID_A, NAME_A, NAME_B, ADDRESS]


async def _topic_bytes(prefix: str) -> bytes:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"{prefix}pii-scan",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out = bytearray()
    try:
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    out += (r.key or b"") + r.value
                    for _k, v in r.headers or []:
                        out += v
    finally:
        await consumer.stop()
    assert out, f"no records read from {topics}"
    return bytes(out)


async def test_planted_personal_data_is_nowhere_in_clear(system: System, tmp_path: Path) -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(RedactingJsonFormatter())
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        report: dict[str, Any] = {
            "source": "12345",
            "source_ref": "PII-1",
            "reported_at": "2026-11-20T08:15:00+08:00",
            "text": f"市民{NAME_A}来电（{PHONE_A}）反映：楼上住户{NAME_B}家卫生间漏水到她家，"
            f"多次协商无果，身份证号{ID_A}。",
            "location": {"address": ADDRESS, "grid_code": "522731-103-007-01"},
            "reporter": {"name": NAME_A, "phone": PHONE_A, "role": "citizen"},
            "parties": [
                {"name": NAME_A, "phone": PHONE_A, "id_number": ID_A, "role": "applicant"},
                {"name": NAME_B, "phone": PHONE_B, "role": "respondent"},
            ],
        }
        case_id = await submit(system, report)
        case = await mediation_case(system, case_id, "assigned")
        who = mediator_of(system, case)
        clear = (await system.mediation.get(f"/v1/mediation/cases/{case_id}", headers=who)).json()
        assert clear["personal_data"] == "clear" and PHONE_A in str(clear["contact"])
        masked = (await system.followup.get(f"/v1/cases/{case_id}", headers=system.admin)).text
        assert PHONE_A not in masked and NAME_A not in masked
        await reach_agreement(system, case_id)
        status = (
            await system.intake.get(
                "/v1/reports/12345/PII-1", headers={"X-API-Key": system.keys["12345"]}
            )
        ).text
        assert PHONE_A not in status and ID_A not in status
    finally:
        logging.getLogger().removeHandler(handler)

    logs = buf.getvalue()
    assert logs.count("\n") > 10  # the run did log
    for value in PLANTED:
        assert value not in logs, f"{value} in logs"
    dbs = list(tmp_path.glob("*.db*"))
    assert {p.name for p in dbs} >= {"intake.db", "triage.db", "mediation.db", "followup.db"}
    # the scan can see what is stored in clear: the non-personal source_ref is there
    assert any(b"PII-1" in p.read_bytes() for p in dbs if p.name.startswith("intake"))
    for path in dbs:
        raw = path.read_bytes()
        for value in PLANTED:
            assert value.encode() not in raw, f"{value} in clear in {path.name}"
    on_kafka = await _topic_bytes(system.prefix)
    assert b"PII-1" in on_kafka
    for value in PLANTED:
        assert value.encode() not in on_kafka, f"{value} in clear on a Kafka topic"
