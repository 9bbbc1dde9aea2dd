"""Encryption, keyed hashes, masks, redaction and the redacting log formatter."""

from __future__ import annotations

import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import pii
from shared.logs import configure_logging
from shared.pii import (
    PiiCipher,
    is_organisation,
    mask_address,
    mask_id_number,
    mask_name,
    mask_phone,
    redact_text,
)


def test_encrypt_round_trip_and_ciphertext_hides_value() -> None:
    c = PiiCipher("k" * 32)
    token = c.encrypt("13912345678")
    assert token and "13912345678" not in token
    assert c.decrypt(token) == "13912345678"
    with pytest.raises(ValueError, match="cannot decrypt"):
        PiiCipher("other-key-0123456789").decrypt(token)


def test_values_are_sealed_with_aes_gcm_and_fernet_values_from_before_still_open() -> None:
    from cryptography.fernet import Fernet

    from shared.pii import _fernet, key_id

    c = PiiCipher("k" * 32)
    token = c.seal({"phone": "13912345678"})
    assert token.startswith(key_id("k" * 32) + ":~")
    kid, _, body = token.partition(":")
    tampered = f"{kid}:~{body[1:-6]}{'A' if body[-6] != 'A' else 'B'}{body[-5:]}"
    with pytest.raises(ValueError, match="cannot decrypt"):
        c.unseal(tampered)  # the tag protects every byte
    fernet: Fernet = _fernet("k" * 32)
    raw = json.dumps({"phone": "13700001111"}).encode()
    before = f"{kid}:{fernet.encrypt(raw).decode()}"
    assert c.unseal(before) == {"phone": "13700001111"}
    rotating = PiiCipher("n" * 32, previous=["k" * 32])
    moved = rotating.rotate(before)
    assert moved is not None and moved.startswith(key_id("n" * 32) + ":~")
    assert PiiCipher("n" * 32).unseal(moved) == {"phone": "13700001111"}
    with pytest.raises(ValueError, match=kid):
        PiiCipher("n" * 32).unseal(token)  # sealed with a key no longer configured


def test_blind_index_matches_normalised_phones_only_under_the_same_key() -> None:
    c = PiiCipher("k" * 32)
    assert c.blind_index("phone", "139 1234 5678") == c.blind_index("phone", "+8613912345678")
    assert c.blind_index("phone", "13912345678") != c.blind_index("id", "13912345678")
    assert c.blind_index("phone", "13912345678") != PiiCipher("x" * 32).blind_index(
        "phone", "13912345678"
    )
    assert c.blind_index("id", "52273119560613693x") == c.blind_index("id", "52273119560613693X")


def test_seal_round_trip() -> None:
    c = PiiCipher("k" * 32)
    sealed = c.seal({"name": "王小明"})
    assert "王小明" not in sealed and c.unseal(sealed) == {"name": "王小明"}


def test_masks() -> None:
    assert mask_phone("13812341234") == "138****1234"
    assert mask_name("王小明") == "王*明" and mask_name("王明") == "王*"
    assert mask_id_number("522731195606136930") == "522731**********30"
    assert mask_address("南溪县沙坪镇河口村3组12号").endswith("****")
    assert "12号" not in (mask_address("南溪县沙坪镇河口村3组12号") or "")


def test_redact_text_masks_phones_and_id_numbers_in_free_text() -> None:
    out = redact_text("报警人王某，电话13912345678，身份证522731195606136930，座机0851-86221234")
    assert "13912345678" not in out and "522731195606136930" not in out
    assert "86221234" not in out
    assert "139****5678" in out


def test_organisations_are_recognised() -> None:
    assert is_organisation("南溪县明视眼科医院") and is_organisation("贵州某某建筑有限公司")
    assert not is_organisation("彭正清")


def test_log_lines_never_carry_phone_or_id_numbers() -> None:
    buf = io.StringIO()
    configure_logging("INFO", stream=buf)
    logging.getLogger("t").info(
        "caller 13912345678 id 522731195606136930",
        extra={"phone": "13912345678", "note": "手机13912345678"},
    )
    line = buf.getvalue()
    assert line and "13912345678" not in line and "522731195606136930" not in line


def _redact_every_pattern(text: str) -> str:
    """redact_text without its ASCII shortcut: every pattern on every text."""
    text = pii.ID_RE.sub(lambda m: m.group(1) + "*" * 10 + m.group(3)[-2:], text)
    text = pii.PHONE_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    text = pii.LANDLINE_RE.sub(lambda m: f"{m.group(1)}-****{m.group(2)[-2:]}", text)
    text = pii.ADDRESS_RE.sub(lambda m: pii._mask_digits(m.group(0)), text)
    text = pii.HONORIFIC_NAME_RE.sub(
        lambda m: m.group(1) + "*" * len(m.group(2) or "") + m.group(3), text
    )
    return pii.CUE_NAME_RE.sub(lambda m: m.group(1) + m.group(2) + "*" * len(m.group(3)), text)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "13912345678",
                "139 1234 5678",
                "0851-86221234",
                "522731195606136930",
                "12",
                "123",
                "X",
                "case-",
                " ",
                "-",
                "王先生",
                "幢",
                "路12号",
                "ev_01",
                "０８５１",
            ]
        )
        | st.text(alphabet="0123456789 -abcXx_:", max_size=12),
        max_size=8,
    )
)
def test_the_ascii_shortcut_redacts_exactly_as_every_pattern_does(parts: list[str]) -> None:
    text = "".join(parts)
    assert redact_text(text) == _redact_every_pattern(text)
