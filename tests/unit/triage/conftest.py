"""Shared helpers for the triage unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.triage.domain import Party, TriageDecision, TriageInput, decide
from services.triage.rules import Rules, load_rules

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def rules() -> Rules:
    return load_rules()


def triage(rules: Rules, text: str, source: str = "grid", **kw: Any) -> TriageDecision:
    parties = tuple(Party(name=n, role=r) for n, r in kw.pop("parties", ()))
    return decide(TriageInput(source=source, text=text, parties=parties, **kw), rules, NOW)
