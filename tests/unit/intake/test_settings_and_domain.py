"""Intake settings refuse default secrets outside dev mode; pure rules behave as documented."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.intake.domain import (
    TokenBucket,
    guess_dispute_type,
    merge_rank,
    open311_status,
    sign_webhook,
    verify_webhook,
)
from services.intake.settings import IntakeSettings
from shared.auth import new_signing_keys


def test_default_pii_key_is_refused_outside_dev_mode() -> None:
    with pytest.raises(ValidationError, match="pii_key"):
        IntakeSettings(dev_mode=False, database_url="sqlite+aiosqlite://")
    ok = IntakeSettings(
        dev_mode=False,
        database_url="sqlite+aiosqlite://",
        pii_key="a-real-key-of-enough-length-0123456789",
        jwt_public_key=new_signing_keys()[1],
    )
    assert ok.http_port == 8001 and ok.merge_window_hours == 72


def test_type_guess_is_only_for_clear_cases() -> None:
    assert guess_dispute_type("劳动保障/欠薪", "随便") == "labour"
    assert guess_dispute_type(None, "楼上漏水") == "neighbour"
    assert guess_dispute_type(None, "双方吵起来了") is None
    assert guess_dispute_type(None, "医院拖欠护工工资") is None  # two types named: no guess


def test_merge_rank() -> None:
    assert merge_rank("labour", None, "marriage_family") is None
    assert merge_rank("labour", None, "labour") == 0
    assert merge_rank(None, "labour", "labour") == 0
    assert merge_rank(None, "neighbour", "labour") == 1
    assert merge_rank("labour", None, None) == 1


def test_signature_scheme() -> None:
    sig = sign_webhook("secret", "1764000000", b'{"a":1}')
    assert sig == (
        "sha256=" + __import__("hmac").new(b"secret", b'1764000000.{"a":1}', "sha256").hexdigest()
    )
    assert verify_webhook("secret", "1764000000", b'{"a":1}', sig)
    assert not verify_webhook("secret", "1764000001", b'{"a":1}', sig)


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    assert [bucket.take(0.0), bucket.take(0.0)] == [0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(1.0)
    assert bucket.take(1.0) == 0.0


def test_open311_status() -> None:
    assert [open311_status(s) for s in ("received", "agreed", "closed", "transferred")] == [
        "open",
        "open",
        "closed",
        "closed",
    ]
