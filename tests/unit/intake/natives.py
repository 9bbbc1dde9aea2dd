"""Native records of each source system, as documented in docs/intake.md."""

from __future__ import annotations

import json
from typing import Any

CALL_110: dict[str, Any] = {
    "jjdbh": "J5227312026112000123",
    "bjsj": "2026-11-20 08:15:00",
    "bjnr": "报警人称与邻居因楼上漏水发生争吵，双方情绪激动，请求民警到场处理。",
    "bjrxm": "张建华",
    "bjrdh": "13811112222",
    "fadz": "南溪县城关镇幸福路18号3单元",
    "jqlb": "纠纷-邻里纠纷",
    "jd": 107.12,
    "wd": 27.21,
    "dsr": [
        {"xm": "张建华", "dh": "13811112222", "js": "申请人"},
        {"xm": "李桂芳", "dh": "13933334444", "sfzh": "522731198502021238", "js": "被申请人"},
    ],
}

ORDER_12345: dict[str, Any] = {
    "gdbh": "GD202611200456",
    "slsj": "2026-11-20T09:02:11+08:00",
    "sqlx": "投诉",
    "fl": "劳动保障/欠薪",
    "jjcd": "紧急",
    "sqnr": "来电人反映在某建筑工地务工，老板拖欠三个月工资共两万余元，多次催讨未果。",
    "sqr": "刘德胜",
    "lxdh": "15955556666",
    "sjdz": "南溪县工业园区某工地",
    "bsqr": [{"mc": "南溪县宏远建筑劳务有限公司"}],
}

NOTE_GRID: dict[str, Any] = {
    "note_id": "WG20261120-0101",
    "grid_code": "522731-103-007-01",
    "worker": {"name": "雷春燕", "phone": "17306228888"},
    "content": "网格员走访：两户村民因宅基地边界问题争执，一方已动手推搡。",
    "category": "矛盾纠纷/土地",
    "address": "南溪县沙坪镇河口村",
    "created_at": "2026-11-20T10:30:00+08:00",
    "parties": [
        {
            "name": "彭正清",
            "phone": "13378707117",
            "id_number": "522731195606136930",
            "role": "applicant",
        },
        {"name": "彭正明", "role": "respondent"},
    ],
}

NATIVE = {"110": CALL_110, "12345": ORDER_12345, "grid": NOTE_GRID}
REFS = {"110": CALL_110["jjdbh"], "12345": ORDER_12345["gdbh"], "grid": NOTE_GRID["note_id"]}


def raw(record: dict[str, Any]) -> bytes:
    """Serialise as a source system would."""
    return json.dumps(record, ensure_ascii=False).encode()
