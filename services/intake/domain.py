"""Intake's pure rules: merging (并单), status wording, webhook signatures, backoff, rate limit."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.pii import (
    is_organisation,
    mask_address,
    mask_id_number,
    mask_name,
    mask_phone,
    redact_free_text,
)

# dispute_type → (中文, words that make the type unmistakable in a category or narrative)
DISPUTE_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "marriage_family": (
        "婚姻家庭",
        ("婚姻", "离婚", "家庭纠纷", "婚恋", "赡养", "抚养", "彩礼", "继承", "家暴"),
    ),
    "neighbour": ("邻里", ("邻里", "噪音", "漏水", "高空抛物")),
    "labour": ("劳动争议", ("劳动", "欠薪", "讨薪", "工资", "工伤", "社保", "辞退")),
    "medical": ("医疗纠纷", ("医疗", "医患", "手术", "医院", "诊所")),
    "debt_contract": ("借贷合同", ("借贷", "借款", "欠款", "合同", "担保")),
    "property_mgmt": ("物业", ("物业",)),
    "land": ("土地山林", ("土地", "宅基地", "山林", "征地", "拆迁", "承包地")),
    "traffic": ("交通事故", ("交通事故", "车祸", "交通")),
    "consumer": ("消费", ("消费", "退款", "预付卡", "网购")),
    "public_order": ("治安", ("治安", "打架", "斗殴", "殴打", "骚扰")),
    "other": ("其他", ()),
}

STATUS_NOTES: dict[str, str] = {
    "received": "已受理",
    "triaged": "已分流",
    "assigned": "已派单",
    "accepted": "已签收",
    "mediating": "调解中",
    "agreed": "已达成调解协议",
    "follow_up": "回访中",
    "closed": "已办结",
    "returned": "已退单，重新分流中",
    "failed": "调解未成功",
    "escalated": "已提级处理",
    "transferred": "已转诉讼或仲裁",
    "reopened": "回访发现未履行，重新调解",
    "merged": "已并单",
}
CHANNEL_NAMES = {
    "police": "公调对接",
    "court": "诉调对接",
    "labour": "劳动争议调解仲裁",
    "medical": "医调委",
    "people": "人民调解",
}
CLOSED_FOR_SOURCE = frozenset({"closed", "transferred"})


def as_utc(dt: datetime) -> datetime:
    """Naive datetimes read back from SQLite are UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


# per type, its words as one pattern: one C scan of the text per type, not one per word
_TYPE_PATTERNS = [
    (code, re.compile("|".join(re.escape(w) for w in words)))
    for code, (_, words) in DISPUTE_TYPES.items()
    if words  # a type without words is never named (an empty pattern would match anything)
]


def guess_dispute_type(category: str | None, text: str) -> str | None:
    """A dispute type only when the source's category (else the text) names exactly one."""
    for haystack in (category or "", text):
        found = {code for code, pattern in _TYPE_PATTERNS if pattern.search(haystack)}
        if len(found) == 1:
            return found.pop()
        if found:
            return None  # ambiguous: do not let a guess block a merge
    return None


def may_merge(case_dispute_type: str | None, report_guess: str | None) -> bool:
    """并单 unless the case's type is known and the new report clearly indicates another."""
    return case_dispute_type is None or report_guess is None or case_dispute_type == report_guess


def merge_rank(
    case_dispute_type: str | None, case_guess: str | None, report_guess: str | None
) -> int | None:
    """Order merge candidates: 0 same type (known, else guessed), 1 no type to compare;
    None when the case's known type clearly differs from the report's."""
    if not may_merge(case_dispute_type, report_guess):
        return None
    if report_guess is not None and (case_dispute_type or case_guess) == report_guess:
        return 0
    return 1


def open311_status(status: str) -> str:
    """Open311 knows only open and closed."""
    return "closed" if status in CLOSED_FOR_SOURCE else "open"


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Fengqiao-Signature value: sha256=<hex HMAC-SHA256 of '<timestamp>.<body>'>."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_webhook(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign_webhook(secret, timestamp, body), signature)


def backoff_s(attempts: int, base_s: float, cap_s: float) -> float:
    """Delay before the next try after `attempts` failures: base · 2^(attempts−1), capped."""
    return float(min(cap_s, base_s * (2 ** max(0, attempts - 1))))


@dataclass
class TokenBucket:
    """Per-key rate limit: `rate` tokens a second, at most `burst` saved up."""

    rate: float
    burst: int
    tokens: float = field(default=-1.0)
    updated: float = 0.0

    def take(self, now: float) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        if self.tokens < 0:
            self.tokens, self.updated = float(self.burst), now
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate if self.rate > 0 else math.inf


def masked_text(
    text: str, names: list[str | None], addresses: list[str | None] | None = None
) -> str:
    """The given persons' names and addresses masked wherever the text has them, and phone and
    ID numbers, door addresses and names found by pattern (shared.pii.redact_free_text)."""
    return redact_free_text(text, names, addresses or ())


def masked_person(p: dict[str, Any] | None) -> dict[str, Any] | None:
    """A reporter or party as API responses show it."""
    if not p:
        return None
    name = p.get("name")
    return {
        "name": name if is_organisation(name) else mask_name(name),
        "phone": mask_phone(p.get("phone")),
        "id_number": mask_id_number(p.get("id_number")),
        "role": p.get("role"),
    }


def masked_location(loc: dict[str, Any] | None, grid_code: str | None) -> dict[str, Any] | None:
    """Address masked; coordinates left out (they point at a home)."""
    if not loc and not grid_code:
        return None
    return {"address": mask_address((loc or {}).get("address")), "grid_code": grid_code}
