"""The period's 报表 as an XLSX workbook, built from /v1/stats and /v1/cases answers."""

from __future__ import annotations

from io import BytesIO
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from services.console.labels import label
from services.console.views import AreaRow, Trend, local, percent

BY = (
    ("by_status", "status", "按状态"),
    ("by_channel", "channel", "按渠道"),
    ("by_tier", "tier", "按层级"),
    ("by_dispute_type", "dispute_type", "按类型"),
    ("by_source", "source", "按来源"),
)
CASE_COLUMNS = (
    ("case_id", "案件编号", None),
    ("status", "状态", "status"),
    ("source", "来源", "source"),
    ("dispute_type", "纠纷类型", "dispute_type"),
    ("severity", "风险等级", "severity"),
    ("channel", "调解渠道", "channel"),
    ("tier", "层级", "tier"),
    ("grid_code", "网格编码", None),
    ("organisation_id", "承办组织", None),
    ("mediator_id", "调解员", None),
    ("received_at", "受理时间", "time"),
    ("mediation_due", "调解期限", "time"),
    ("agreed_at", "协议时间", "time"),
    ("closed_at", "办结时间", "time"),
    ("overdue", "督办", "bool"),
    ("satisfaction", "满意度", None),
)


def _header(ws: Worksheet, *titles: str) -> None:
    ws.append(list(titles))
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)


def build_workbook(
    stats: dict[str, Any],
    cases: list[dict[str, Any]],
    trend: Trend,
    areas: list[AreaRow],
    *,
    period: str,
    tz: str,
    who: str,
    complete: bool = True,
) -> bytes:
    """概况 (headline figures and counts), 按周 (trend), 区域, 案件 (one row per case)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "概况"
    ws.append(["矛盾纠纷调处化解报表", period])
    ws.append(["导出人", who])
    if not complete:
        ws.append(["说明", f"按周、区域与案件明细仅含前 {len(cases)} 件（统计数字为全部）"])
    _header(ws, "指标", "数值")
    success = stats.get("mediation_success") or {}
    on_time = stats.get("on_time") or {}
    first = stats.get("settled_at_first_tier") or {}
    sat = stats.get("satisfaction") or {}
    ws.append(["案件总数", stats.get("total", 0)])
    ws.append(["在办案件", stats.get("backlog", 0)])
    ws.append(["督办（超期）", stats.get("overdue", 0)])
    ws.append(["矛盾不上交率", percent(first.get("rate"))])
    ws.append(["调解成功率", percent(success.get("rate"))])
    ws.append(["按期办结率", percent(on_time.get("rate"))])
    ws.append(["群众满意度（均分）", sat.get("mean") if sat.get("mean") is not None else "—"])
    ws.append(["满意度回访数", sat.get("responses", 0)])
    for key, table, title in BY:
        ws.append([])
        _header(ws, title, "案件数")
        for code, n in (stats.get(key) or {}).items():
            ws.append([label(table, code), n])
    ws.column_dimensions["A"].width = 22

    wt = wb.create_sheet("按周")
    _header(wt, "周（周一）", "新受理", "达成协议")
    for w, r, s in zip(trend.weeks, trend.received, trend.settled, strict=True):
        wt.append([w, r, s])

    wa = wb.create_sheet("区域")
    _header(wa, "网格编码", "乡镇", "案件数", "在办", "督办", "化解")
    for a in areas:
        wa.append([a.code, a.town, a.total, a.open, a.overdue, a.settled])

    wc = wb.create_sheet("案件")
    _header(wc, *(title for _, title, _ in CASE_COLUMNS))
    for c in cases:
        row: list[Any] = []
        for key, _, kind in CASE_COLUMNS:
            value = c.get(key)
            if kind == "time":
                row.append(local(value, tz) if value else "")
            elif kind == "bool":
                row.append("是" if value else "否")
            elif kind:
                row.append(label(kind, value))
            else:
                row.append(value if value is not None else "")
        wc.append(row)
    wc.column_dimensions["A"].width = 38
    out = BytesIO()
    wb.save(out)
    return out.getvalue()
