"""Settings refuse default secrets outside dev mode and read per-service prefixes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.triage.settings import TriageSettings
from shared.auth import new_signing_keys


def test_default_secrets_are_refused_outside_dev_mode() -> None:
    with pytest.raises(ValidationError, match="pii_key"):
        TriageSettings(dev_mode=False)
    ok = TriageSettings(dev_mode=False, pii_key="p" * 32, jwt_public_key=new_signing_keys()[1])
    assert ok.pii_key == "p" * 32


def test_service_prefix_wins_over_shared_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FENGQIAO_KAFKA_BOOTSTRAP", "shared:9092")
    assert TriageSettings().kafka_bootstrap == "shared:9092"
    monkeypatch.setenv("TRIAGE_KAFKA_BOOTSTRAP", "own:9092")
    assert TriageSettings().kafka_bootstrap == "own:9092"


def test_database_defaults_to_a_sqlite_file_per_service() -> None:
    s = TriageSettings()
    assert s.database_url.startswith("sqlite+aiosqlite:///") and s.database_url.endswith(
        "triage.db"
    )
