"""`make screens`: screenshots of each console screen under docs/screens/.

Starts the stack like the browser tests (scripts/run.py on free ports, fresh topics), files a few
reports, moves some cases along through the APIs, then photographs every screen in headless
Chromium at 1366×768 (office screen) and 390×844 (phone).
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import httpx
from selenium.webdriver.remote.webdriver import WebDriver

from services.console.demo_pages import near
from tests.browser.driver import new_driver
from tests.browser.pages import sign_in_as, wait_for
from tests.browser.stack import (
    REPO,
    Stack,
    case_in_ledger,
    case_in_mediation,
    eventually,
    start_stack,
)

OUT = REPO / "docs" / "screens"
MEDIATOR = "med-people-grid-day"
COORDINATOR = "coordinator-county"  # sees every tier, works the review queue
REPORTS = [
    (
        "网格员走访：两户邻居因楼上漏水把楼下天花板泡坏发生争吵，楼上不愿赔偿维修费。",
        "522731001001",
    ),
    ("联户长反映：邻居家空调外机噪音太大，晚上睡不着，双方吵了几次。", "522731001001"),
    ("网格员走访：两家因公共通道堆放杂物发生口角，要求村里调解。", "522731001002"),
    ("网格员走访：小区住户占用公共车位，与邻居多次争执，要求调解。", "522731001002"),
    ("联户长反映：楼上住户深夜装修噪音扰民，楼下住户无法休息。", "522731001001"),
    ("网格员走访：两户因院墙排水问题发生纠纷，雨水流入邻居家院子。", "522731001002"),
]


REPEATS = (
    "网格员走访：张大山反映楼上住户漏水把天花板泡坏，双方因维修费用发生争吵。",
    "网格员走访：张大山称朋友向他借款五千元至今未还，多次催讨无果，请求协调还款。",
    "网格员走访：张大山与妻子闹离婚，因家庭纠纷多次争吵，请求调解。",
)
DOUBTFUL = "网格员：两家为排水沟争执，他家门后放着一把柴刀，邻居有些担心。"


def spot(grid: str) -> tuple[float, float] | None:
    """Coordinates near a demo grid, as the demo report form gives them."""
    where = near(grid)
    return (where["lat"], where["lon"]) if where else None


def post(stack: Stack, path: str, body: dict[str, object], who: str, service: str) -> None:
    """One API action as a member of staff."""
    r = httpx.post(f"{stack.url(service)}{path}", json=body, headers=stack.headers(who), timeout=30)
    r.raise_for_status()


def seed_cases(stack: Stack) -> list[str]:
    """File the reports and move cases to several points of the life cycle."""
    ids = [
        stack.report(text, grid, f"1380000{i:04d}", where=spot(grid))
        for i, (text, grid) in enumerate(REPORTS)
    ]
    # one man in three disputes (a repeat_party warning), one doubtful report (the review queue)
    zhang = [{"name": "张大山", "phone": "13900001111", "role": "applicant"}]
    for text in REPEATS:
        cid = stack.report(text, "522731002001", "", parties=zhang, where=spot("522731002001"))
        stack.typed_in_intake(cid)
    stack.report(DOUBTFUL, "522731001002", "13900002222", where=spot("522731001002"))
    for cid in ids:
        case_in_mediation(stack, MEDIATOR, cid, "assigned")
    med = "mediation"
    for cid in ids[:4]:
        post(stack, f"/v1/cases/{cid}/accept", {}, MEDIATOR, med)
    for cid in ids[:3]:
        post(stack, f"/v1/cases/{cid}/notes", {"text": "已约双方到村委会面谈。"}, MEDIATOR, med)
    for cid in ids[:2]:
        post(
            stack,
            f"/v1/cases/{cid}/agreement",
            {"terms": "责任方于十日内赔偿维修费用，双方不再追究。", "amount_yuan": 3000},
            MEDIATOR,
            med,
        )
    post(
        stack, f"/v1/cases/{ids[2]}/failure", {"reason": "双方分歧较大，调解不成。"}, MEDIATOR, med
    )
    for cid in ids[:2]:
        case_in_ledger(stack, MEDIATOR, cid, "follow_up")
    visit = {"method": "phone", "honoured": True, "satisfaction": 5, "note": "协议已履行。"}
    post(stack, f"/v1/cases/{ids[1]}/visits", visit, MEDIATOR, "followup")
    post(stack, f"/v1/cases/{ids[1]}/visits", visit, MEDIATOR, "followup")
    case_in_ledger(stack, MEDIATOR, ids[1], "closed")
    return ids


def warnings_open(stack: Stack) -> bool:
    """Follow-up has raised the repeat_party warning."""
    r = httpx.get(
        f"{stack.url('followup')}/v1/warnings",
        params={"kind": "repeat_party"},
        headers=stack.headers(COORDINATOR),
        timeout=30,
    )
    return r.status_code == 200 and bool(r.json()["items"])


def shoot(d: WebDriver, name: str, width: int = 1366, full: bool = True) -> None:
    """Save the page, grown to its full height (at most 4000 px)."""
    wait_for(d, "main h1")
    height = 768 if width > 800 else 844
    if full:
        height = min(4000, int(d.execute_script("return document.documentElement.scrollHeight")))
    d.set_window_size(width, max(height, 600))
    d.save_screenshot(str(OUT / f"{name}.png"))
    print(f"  docs/screens/{name}.png")


def main() -> int:
    """Start, seed, photograph, stop."""
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fq-screens-") as tmp:
        stack = start_stack(Path(tmp), f"scr{uuid.uuid4().hex[:8]}.")
        try:
            ids = seed_cases(stack)
            console = stack.url("console")
            d = new_driver()
            try:
                d.get(f"{console}/login")
                shoot(d, "login")
                sign_in_as(d, console, MEDIATOR)
                shoot(d, "my-cases")
                d.get(f"{console}/cases/{ids[0]}")
                shoot(d, "case")
                d.get(f"{console}/cases/{ids[4]}")
                shoot(d, "case-assigned")
                d.get(f"{console}/cases")
                shoot(d, "cases")
                d.get(f"{console}/demo/report")
                shoot(d, "demo-report")
                d.set_window_size(390, 844)
                d.get(f"{console}/my")
                shoot(d, "phone-my-cases", width=390)
                d.get(f"{console}/cases/{ids[0]}")
                shoot(d, "phone-case", width=390, full=False)
            finally:
                d.quit()
            d = new_driver()
            try:
                sign_in_as(d, console, COORDINATOR)
                eventually(
                    lambda: warnings_open(stack), what="the repeat_party warning", timeout=120
                )
                d.get(f"{console}/overview?days=30")
                wait_for(d, "canvas#trend[data-drawn]")
                shoot(d, "overview")
                d.get(f"{console}/warnings?status=")
                shoot(d, "warnings")
                d.set_window_size(390, 844)
                d.get(f"{console}/overview?days=30")
                wait_for(d, "canvas#trend[data-drawn]")
                shoot(d, "phone-overview", width=390)
            finally:
                d.quit()
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
