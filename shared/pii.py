"""Personal data (PIPL): field encryption, keyed hashes for matching, masking, redaction."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

DEV_PII_KEY = "dev-only-pii-key-change-me"

PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?!\d)")
LANDLINE_RE = re.compile(r"(?<!\d)(0\d{2,3})-?(\d{7,8})(?!\d)")
ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[\dXx])(?![0-9A-Za-z])")


class PiiCipher:
    """Encrypts fields with a key derived from settings and hashes them for equality matching."""

    def __init__(self, secret: str) -> None:
        enc_key = hashlib.sha256(b"fengqiao/enc/" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(enc_key))
        self._mac_key = hashlib.sha256(b"fengqiao/mac/" + secret.encode()).digest()

    def encrypt(self, value: str | None) -> str | None:
        """Encrypt a string (None stays None)."""
        if value is None or value == "":
            return value
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str | None) -> str | None:
        """Decrypt a string produced by encrypt()."""
        if token is None or token == "":
            return token
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("cannot decrypt personal data with this key") from None

    def seal(self, data: dict[str, Any]) -> str:
        """Encrypt a JSON object (contact details that travel on the bus)."""
        return self._fernet.encrypt(json.dumps(data, ensure_ascii=False).encode()).decode()

    def unseal(self, token: str) -> dict[str, Any]:
        """Decrypt a sealed JSON object."""
        out: dict[str, Any] = json.loads(self._fernet.decrypt(token.encode()))
        return out

    def blind_index(self, kind: str, value: str | None) -> str | None:
        """Keyed hash of a normalised phone or ID number, for matching without decrypting."""
        if not value:
            return None
        norm = re.sub(r"[\s-]", "", value).upper()
        if kind == "phone":
            norm = re.sub(r"^(\+?86)", "", norm)
        return hmac.new(self._mac_key, f"{kind}:{norm}".encode(), hashlib.sha256).hexdigest()


def mask_phone(phone: str | None) -> str | None:
    """138****1234."""
    if not phone:
        return phone
    digits = re.sub(r"\D", "", phone)
    if len(digits) >= 7:
        return f"{digits[:3]}****{digits[-4:]}"
    return "****"


def mask_name(name: str | None) -> str | None:
    """张* / 张*明; organisations should not be passed here."""
    if not name:
        return name
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_id_number(value: str | None) -> str | None:
    """522731**********30."""
    if not value:
        return value
    if len(value) <= 6:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 8) + value[-2:]


def mask_address(address: str | None) -> str | None:
    """Keep the first few characters (county/town), hide the rest."""
    if not address:
        return address
    keep = min(6, max(1, len(address) // 2))
    return address[:keep] + "****"


def redact_text(text: str) -> str:
    """Mask phone and ID numbers inside free text (narratives, errors, log lines)."""
    text = ID_RE.sub(lambda m: m.group(1) + "*" * 10 + m.group(3)[-2:], text)
    text = PHONE_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return LANDLINE_RE.sub(lambda m: f"{m.group(1)}-****{m.group(2)[-2:]}", text)


ORG_MARKERS = (
    "公司",
    "厂",
    "企业",
    "医院",
    "诊所",
    "卫生院",
    "学校",
    "中心",
    "银行",
    "集团",
    "商店",
    "超市",
    "店",
    "委员会",
    "政府",
    "机构",
    "合作社",
    "物业",
    "门诊",
    "工作室",
)


def is_organisation(name: str | None) -> bool:
    """Whether a party name names an organisation rather than a person."""
    return bool(name) and any(m in (name or "") for m in ORG_MARKERS)
