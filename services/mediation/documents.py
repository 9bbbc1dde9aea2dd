"""The agreement document (调解协议书) as plain text, and masking of unsealed contacts."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.pii import (
    mask_address,
    mask_id_number,
    mask_name,
    mask_phone,
    redact_free_text,
    redact_text,
)

MASKS = {
    "name": mask_name,
    "phone": mask_phone,
    "id_number": mask_id_number,
    "address": mask_address,
}


def mask_contact(value: Any, key: str = "") -> Any:
    """Mask every name, phone, ID number and address inside an unsealed contact object."""
    if isinstance(value, dict):
        return {k: mask_contact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_contact(v, key) for v in value]
    if isinstance(value, str):
        fn = MASKS.get(key)
        return fn(value) if fn else redact_text(value)
    return value


def _names(value: Any) -> set[str]:
    if isinstance(value, dict):
        out = {value["name"]} if isinstance(value.get("name"), str) and value["name"] else set()
        for v in value.values():
            out |= _names(v)
        return out
    if isinstance(value, list):
        return set().union(*(_names(v) for v in value)) if value else set()
    return set()


def redact_with_contact(text: str, contact: dict[str, Any] | None) -> str:
    """Mask this case's people and address, and phones, IDs, doors and names found by pattern,
    inside free text (shared.pii.redact_free_text)."""
    address = (contact or {}).get("address")
    return redact_free_text(
        text, _names(contact or {}), [address] if isinstance(address, str) else []
    )


def _local(when: datetime | None, tz: str) -> str:
    if when is None:
        return "—"
    return when.astimezone(ZoneInfo(tz)).strftime("%Y年%m月%d日")


def _people(contact: dict[str, Any] | None, parties: list[dict[str, Any]]) -> list[str]:
    """Lines naming the parties: from the contact when the caller may see it, else masked."""
    people = (contact or {}).get("parties") if isinstance(contact, dict) else None
    lines: list[str] = []
    if isinstance(people, list) and people:
        for p in people:
            if isinstance(p, dict):
                role = {"applicant": "申请人", "respondent": "被申请人"}.get(
                    str(p.get("role")), "当事人"
                )
                lines.append(f"{role}：{p.get('name') or '—'}  电话：{p.get('phone') or '—'}")
    if not lines:
        for p in parties:
            role = {"applicant": "申请人", "respondent": "被申请人"}.get(
                str(p.get("role")), "当事人"
            )
            lines.append(f"{role}：{p.get('display') or '—'}")
    return lines


def render_agreement(
    *,
    title: str,
    case_id: str,
    agreement_id: str,
    organisation: str,
    mediator: str,
    dispute_type: str,
    terms: str,
    amount_yuan: int | None,
    performance_due: datetime | None,
    agreed_at: datetime,
    contact: dict[str, Any] | None,
    parties: list[dict[str, Any]],
    tz: str = "Asia/Shanghai",
) -> str:
    """The agreement as a printable text document."""
    amount = f"{amount_yuan:,} 元" if amount_yuan is not None else "无金额给付"
    lines = [
        title.center(30),
        "",
        f"协议编号：{agreement_id}",
        f"案件编号：{case_id}",
        f"调解组织：{organisation}",
        f"调解员：{mediator}",
        f"纠纷类型：{dispute_type}",
        "",
        *_people(contact, parties),
        "",
        "经调解，双方自愿达成如下协议：",
        terms,
        "",
        f"给付金额：{amount}",
        f"履行期限：{_local(performance_due, tz)}",
        "",
        "本协议经双方当事人签名（盖章）、调解员签名并加盖调解组织印章后生效。",
        "调解组织将于协议达成后3日、30日进行回访，督促履行。",
        "",
        "当事人（签名）：＿＿＿＿＿＿    调解员（签名）：＿＿＿＿＿＿",
        f"{organisation}（盖章）",
        f"{_local(agreed_at, tz)}",
        "",
    ]
    return "\n".join(lines)
