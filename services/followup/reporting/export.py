"""Series as files for the monthly 报表: CSV (UTF-8 with BOM, for Excel) and XLSX (openpyxl)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from services.followup.reporting.domain import HEADINGS

RATE_FIELDS = frozenset({"success_rate", "on_time_rate", "first_tier_rate"})
ABOUT_HEADINGS = {
    "period": "统计期间",
    "time_zone": "时区",
    "bucket": "统计粒度",
    "group_by": "分组方式",
    "scope": "数据范围",
    "generated_at": "生成时间",
}


def _cell(field: str, value: Any) -> Any:
    return "" if value is None else value


def to_csv(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """One heading line in Chinese, then one line per bucket × group."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADINGS.values())
    for r in rows:
        writer.writerow([_cell(f, r.get(f)) for f in HEADINGS])
    return ("\ufeff" + out.getvalue()).encode()


def to_xlsx(rows: Sequence[Mapping[str, Any]], about: Mapping[str, str]) -> bytes:
    """Sheet 报表: headings in row 1, a line per bucket × group; sheet 说明: period and scope."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "报表"
    ws.append(list(HEADINGS.values()))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for r in rows:
        ws.append([_cell(f, r.get(f)) for f in HEADINGS])
    for col_idx, field in enumerate(HEADINGS, start=1):
        if field in RATE_FIELDS:
            for (cell,) in ws.iter_rows(min_row=2, min_col=col_idx, max_col=col_idx):
                cell.number_format = "0.00%"
    ws.freeze_panes = "A2"
    info = wb.create_sheet("说明")
    for key, heading in ABOUT_HEADINGS.items():
        info.append([heading, about.get(key, "")])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
