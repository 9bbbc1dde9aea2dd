"""Chinese names of the codes the APIs speak (DOMAIN.md §3, §6, §8)."""

from __future__ import annotations

from shared.contracts import CaseStatus

S = CaseStatus

STATUS: dict[str, str] = {
    S.received: "已受理",
    S.triaged: "已研判",
    S.assigned: "已派单",
    S.accepted: "已签收",
    S.mediating: "调解中",
    S.agreed: "已达成协议",
    S.follow_up: "回访中",
    S.closed: "已办结",
    S.returned: "已退单",
    S.failed: "调解不成",
    S.escalated: "已上交",
    S.transferred: "已转诉讼/仲裁",
    S.reopened: "已重启",
    S.merged: "已并单",
}
CHANNEL = {
    "police": "公调对接",
    "court": "诉调对接",
    "labour": "劳动争议调解仲裁",
    "medical": "医调委",
    "people": "人民调解",
}
TIER = {"grid": "网格/村社区", "town": "乡镇街道", "county": "县级矛调中心"}
SEVERITY = {"critical": "红·特别重大", "high": "橙·重大", "medium": "黄·较大", "low": "蓝·一般"}
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
DISPUTE_TYPE = {
    "marriage_family": "婚姻家庭",
    "neighbour": "邻里",
    "labour": "劳动争议",
    "medical": "医疗纠纷",
    "debt_contract": "借贷合同",
    "property_mgmt": "物业",
    "land": "土地山林",
    "traffic": "交通事故",
    "consumer": "消费",
    "public_order": "治安",
    "other": "其他",
}
SOURCE = {"110": "110接处警", "12345": "12345热线", "grid": "网格上报"}
ROLE = {"mediator": "调解员", "coordinator": "协调员", "viewer": "查看员", "admin": "管理员"}
ACTION = {
    "receive": "受理",
    "merge": "并单",
    "triage": "研判",
    "retriage": "重新研判",
    "assign": "派单",
    "reassign": "改派",
    "unassigned": "待人工派单",
    "accept": "签收",
    "return": "退单",
    "note": "调解进展",
    "agree": "达成协议",
    "fail": "调解不成",
    "escalate": "上交上级",
    "transfer": "转诉讼/仲裁",
    "supervise": "督办",
    "reopen": "重启调解",
    "visit": "回访",
    "close": "办结",
    "follow_up": "进入回访",
    "acknowledge_warning": "预警研判",
    "extend": "延期",
    "reroute": "重新分流",
    "resume": "恢复调解",
    "review_confirm": "复核确认研判",
    "review_correct": "复核更正研判",
}
SUPERVISION_KIND = {"sign_for_overdue": "超时未签收", "mediation_overdue": "调解超期"}
WARNING_KIND = {
    "repeat_party": "同一当事人多次涉案",
    "repeat_after_agreement": "协议后再起纠纷",
    "rising_area": "区域案件激增",
    "group_risk": "群体性风险",
    "escalating": "风险升级",
    "soon_due": "即将超期",
}
WARNING_STATUS = {"open": "待研判", "acknowledged": "已研判", "cleared": "已解除"}
TRANSFER_TARGET = {"litigation": "诉讼", "arbitration": "仲裁"}
VISIT_METHOD = {"visit": "上门", "phone": "电话", "wechat": "微信"}
VISIT_STATE = {"scheduled": "待回访", "done": "已回访", "cancelled": "已取消"}
ACTOR_KIND = {"system": "系统", "user": "工作人员"}

TABLES: dict[str, dict[str, str]] = {
    "status": STATUS,
    "channel": CHANNEL,
    "tier": TIER,
    "severity": SEVERITY,
    "dispute_type": DISPUTE_TYPE,
    "source": SOURCE,
    "role": ROLE,
    "action": ACTION,
    "supervision": SUPERVISION_KIND,
    "warning": WARNING_KIND,
    "warning_status": WARNING_STATUS,
    "target": TRANSFER_TARGET,
    "method": VISIT_METHOD,
    "visit_state": VISIT_STATE,
}


def label(table: str, code: object) -> str:
    """`中文名` for a code; the code itself when unknown, 未知 when missing."""
    if code is None or code == "":
        return "—"
    if code == "unknown":
        return "未知"
    return TABLES.get(table, {}).get(str(code), str(code))


def actor(value: str | None) -> str:
    """`system:mediation` → 系统（mediation）, `user:med-1` → med-1."""
    if not value:
        return "—"
    kind, _, who = value.partition(":")
    if kind == "system":
        return f"系统（{who}）"
    return who or value
