"""PII key versions: values carry their key id, old keys still decrypt during a rotation,
`fengqiao pii rekey` moves everything (and the blind indexes) to the current key, and a value no
key opens is an error, never empty data."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from services.intake.repository import IntakeReport, PartyIndex
from services.pii_rekey import rekey_service
from shared.events import utcnow
from shared.pii import PiiCipher, PiiKeyError, key_id
from tests.unit.intake.conftest import make_settings, report, start_intake
from tests.unit.security.conftest import Running

OLD, NEW = "old-key-" + "o" * 32, "new-key-" + "n" * 32


def test_values_carry_their_key_id_and_old_keys_decrypt_during_rotation() -> None:
    old = PiiCipher(OLD)
    sealed = old.encrypt("13812345678")
    assert sealed is not None and sealed.startswith(key_id(OLD) + ":")
    rotating = PiiCipher(NEW, previous=[OLD])
    assert rotating.decrypt(sealed) == "13812345678"
    rotated = rotating.rotate(sealed)
    assert rotated is not None and rotated.startswith(key_id(NEW) + ":")
    assert PiiCipher(NEW).decrypt(rotated) == "13812345678"
    with pytest.raises(PiiKeyError, match=key_id(OLD)):
        PiiCipher(NEW).decrypt(sealed)  # the old key is gone: an error, not ""


def test_values_from_before_key_ids_still_open() -> None:
    import base64
    import hashlib

    legacy_key = base64.urlsafe_b64encode(hashlib.sha256(b"fengqiao/enc/" + OLD.encode()).digest())
    legacy = Fernet(legacy_key).encrypt(b"522731199001011234").decode()
    assert PiiCipher(NEW, previous=[OLD]).decrypt(legacy) == "522731199001011234"
    with pytest.raises(PiiKeyError):
        PiiCipher(NEW).decrypt(legacy)


async def test_rekey_moves_stored_values_and_blind_indexes_to_the_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone, legacy_phone = "13700002222", "13700004444"
    party = [{"name": "赵六", "phone": phone, "role": "applicant"}]
    async for h in start_intake(make_settings(tmp_path, pii_key=OLD)):
        first = await h.post(report("110", "RK-1", parties=party))
        assert first.status_code == 202
        # a report stored before its fields were sealed together: one value per field
        old = PiiCipher(OLD)
        async with h.app.state.runtime.sessions() as s, s.begin():
            s.add(
                IntakeReport(
                    report_id="legacy-r",
                    case_id="legacy-c",
                    source="110",
                    source_ref="RK-0",
                    via="http",
                    received_at=utcnow(),
                    text_enc=old.encrypt("旧的报告"),
                    parties_enc=old.seal({"v": [{"name": "孙七", "phone": legacy_phone}]}),
                    location_enc=old.seal({"v": {"address": "幸福路12号"}}),
                )
            )
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    monkeypatch.setenv("INTAKE_DATABASE_URL", url)
    monkeypatch.setenv("INTAKE_PII_KEY", NEW)
    monkeypatch.setenv("INTAKE_PII_PREVIOUS_KEYS", f'["{OLD}"]')
    counts = await rekey_service("intake")
    assert counts["intake_reports.sealed_enc"] == 1 and counts["intake_reports.text_enc"] == 1
    assert counts["party_index"] == 2
    async for h in start_intake(make_settings(tmp_path, pii_key=NEW)):
        new = PiiCipher(NEW)
        async with h.app.state.runtime.sessions() as s:
            rows = {r.source_ref: r for r in (await s.exec(select(IntakeReport))).all()}
            index = (await s.exec(select(PartyIndex))).all()
        sealed = new.unseal(rows["RK-1"].sealed_enc or "")
        assert sealed["text"] and sealed["parties"][0]["phone"] == phone
        legacy = h.app.state.handlers.opened(rows["RK-0"])  # read with the new key alone
        assert legacy["text"] == "旧的报告" and legacy["parties"][0]["phone"] == legacy_phone
        assert legacy["location"] == {"address": "幸福路12号"} and legacy["reporter"] is None
        assert sorted(i.hash for i in index) == sorted(
            new.blind_index("phone", p) for p in (phone, legacy_phone)
        )
        # the blind index still finds the party under the new key (this harness made a new
        # integrator, so the match counts as a repeat rather than a merge)
        assert (await h.post(report("110", "RK-2", parties=party))).status_code == 202
        await h.settle()
        [received] = h.events(h.topics.reports, "report.received")
        assert received.payload["repeat_count"] == 2


async def test_a_contact_no_key_opens_answers_503_not_an_empty_case(running: Running) -> None:
    if running.name != "mediation":
        return
    from shared.auth import StaffPrincipal

    ctx = running.app.state.ctx
    object.__setattr__(ctx, "cipher", PiiCipher("a-key-that-sealed-nothing-" + "x" * 16))
    r = await running.client.get(
        f"/v1/mediation/cases/{running.case_a}",
        headers=running.bearer(StaffPrincipal("a", "admin")),
    )
    assert r.status_code == 503 and "decrypt" in r.json()["detail"]
