"""The coordinator's work in the console against the real services: a warning raised by
follow-up from a realistic run of reports, acknowledged with a note; the triage review queue
confirmed and corrected; the period's 报表 downloaded and read back with openpyxl."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from services.followup.reporting.domain import HEADINGS
from tests.browser.pages import sign_in_as, text_of, wait_for, wait_for_text, wait_trail
from tests.browser.stack import Stack, case_in_ledger, eventually

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

COUNTY = "coordinator-county"  # county tier: every tier of the demo county, and the review queue
GRID = "522731001001"
DOUBTFUL = "网格员：两家为排水沟争执，他家门后放着一把柴刀，邻居有些担心。"

Browser = Callable[..., WebDriver]


def api(stack: Stack, service: str, path: str, who: str, **params: Any) -> Any:
    r = httpx.get(
        f"{stack.url(service)}{path}", headers=stack.headers(who), params=params, timeout=30
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_a_coordinator_acknowledges_a_warning_follow_up_raised_for_a_man_in_three_disputes(
    stack: Stack, browser: Browser
) -> None:
    zhang = [{"name": "张大山", "phone": "13900007001", "role": "applicant"}]
    texts = (
        "网格员走访：张大山反映楼上住户漏水把天花板泡坏，双方因维修费用发生争吵。",
        "网格员走访：张大山称朋友向他借款五千元至今未还，多次催讨无果，请求协调还款。",
        "网格员走访：张大山与妻子闹离婚，因家庭纠纷多次争吵，请求调解。",
    )
    cases = []
    for text in texts:  # days apart in life: each report is typed before the next comes
        cases.append(stack.report(text, GRID, "", parties=zhang))
        stack.typed_in_intake(cases[-1])
    assert len(set(cases)) == 3

    def raised() -> dict[str, Any] | None:
        body = api(stack, "followup", "/v1/warnings", COUNTY, kind="repeat_party", status="open")
        return next((w for w in body["items"] if set(w["case_ids"]) == set(cases)), None)

    warning = eventually(raised, what="repeat_party raised by follow-up")
    wid = warning["warning_id"]

    console = stack.url("console")
    d = browser()
    sign_in_as(d, console, COUNTY)
    d.get(f"{console}/overview")
    item = wait_for(d, f'[data-testid="warnings"] li[data-warning="{wid}"]')
    assert "同一当事人多次涉案" in item.text and "涉及 3 件纠纷" in item.text
    assert "13900007001" not in d.page_source and "张大山" not in item.text
    for case_id in cases:
        assert item.find_elements(By.CSS_SELECTOR, f'a[data-case="{case_id}"]')
    note = item.find_element(By.CSS_SELECTOR, "textarea[name=note]")
    assert d.find_element(By.CSS_SELECTOR, f'label[for="{note.get_attribute("id")}"]')
    note.send_keys("已约谈张某，安排网格员每周走访")
    item.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    assert wait_for_text(d, '[data-testid="flash"]', "预警已研判") == "预警已研判"
    assert not d.find_elements(By.CSS_SELECTOR, f'li[data-warning="{wid}"]')  # gone from open

    # the open list no longer has it; the acknowledged list does, with the note
    d.get(f"{console}/warnings?status=open&kind=repeat_party")
    wait_for(d, "main h1")
    assert not d.find_elements(By.CSS_SELECTOR, f'li[data-warning="{wid}"]')
    d.get(f"{console}/warnings?status=acknowledged&kind=repeat_party")
    done = wait_for(d, f'li[data-warning="{wid}"]')
    assert done.get_attribute("data-status") == "acknowledged"
    assert "已约谈张某" in done.text and COUNTY in done.text
    assert api(stack, "followup", f"/v1/warnings/{wid}", COUNTY)["status"] == "acknowledged"

    # and on each case's trail, as the follow-up service recorded it
    d.get(f"{console}/cases/{cases[0]}")
    wait_trail(d, "acknowledge_warning")
    entry = text_of(d, '[data-testid="trail"] li[data-action="acknowledge_warning"]')
    assert "预警研判" in entry and "已约谈张某" in entry
    case_warnings = text_of(d, '[data-testid="case-warnings"]')
    assert "已研判" in case_warnings and "已约谈张某" in case_warnings


def review_item(stack: Stack, case_id: str) -> dict[str, Any] | None:
    queue = api(stack, "triage", "/v1/triage/review", COUNTY)["reviews"]
    return next((r for r in queue if r["case_id"] == case_id), None)


def test_a_county_coordinator_confirms_one_review_and_corrects_another(
    stack: Stack, browser: Browser
) -> None:
    confirm = stack.report(DOUBTFUL, GRID, "13900007101")
    correct = stack.report(DOUBTFUL, GRID, "13900007102")
    for case_id in (confirm, correct):
        eventually(lambda c=case_id: review_item(stack, c), what=f"{case_id} in review")
    before = api(stack, "followup", f"/v1/cases/{correct}", COUNTY)
    console = stack.url("console")
    d = browser()
    sign_in_as(d, console, COUNTY)
    d.get(f"{console}/overview")
    item = wait_for(d, f'[data-testid="review"] li[data-case="{confirm}"]')
    assert "柴刀" in item.text and "存疑" in item.text
    item.find_element(By.CSS_SELECTOR, '[data-testid="review-confirm"] button').click()
    assert wait_for_text(d, '[data-testid="flash"]', "研判已确认") == "研判已确认"
    assert not d.find_elements(By.CSS_SELECTOR, f'[data-testid="review"] li[data-case="{confirm}"]')
    assert review_item(stack, confirm) is None

    item = wait_for(d, f'[data-testid="review"] li[data-case="{correct}"]')
    item.find_element(By.TAG_NAME, "summary").click()
    form = item.find_element(By.CSS_SELECTOR, '[data-testid="review-correct"]')
    Select(form.find_element(By.NAME, "severity")).select_by_value("critical")
    form.find_element(By.NAME, "note").send_keys("回访核实：对方拿着柴刀站在门口")
    form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    wait_for_text(d, '[data-testid="flash"]', "研判已更正")
    assert review_item(stack, correct) is None

    # triage re-routed it: the ledger shows the new severity, the trail both verdicts
    after = eventually(
        lambda: (
            c
            if (c := api(stack, "followup", f"/v1/cases/{correct}", COUNTY))["severity"]
            == "critical"
            else None
        ),
        what="the corrected severity in the ledger",
    )
    assert before["severity"] != "critical" and after["tier"] == "county"
    d.get(f"{console}/cases/{correct}")
    wait_trail(d, "review_correct")
    assert "回访核实" in text_of(d, '[data-testid="trail"] li[data-action="review_correct"]')
    d.get(f"{console}/cases/{confirm}")
    wait_trail(d, "review_confirm")


def test_the_xlsx_report_downloads_and_holds_the_series_figures(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    case_id = stack.report(
        "网格员走访：两户邻居因楼上漏水发生争吵。", GRID, "13900007201", where=(26.5834, 107.9772)
    )
    case_in_ledger(stack, COUNTY, case_id, "assigned")
    console = stack.url("console")
    d = browser()
    sign_in_as(d, console, COUNTY)
    d.get(f"{console}/overview?days=30")
    since = wait_for(d, '[data-testid="since"]')
    period = {"from": since.get_attribute("data-from"), "to": since.get_attribute("data-to")}
    # the point of the case on the map, from its coarse place
    assert d.find_elements(By.CSS_SELECTOR, f'[data-testid="map"] circle[data-case="{case_id}"]')
    Select(d.find_element(By.ID, "x-bucket")).select_by_value("week")
    Select(d.find_element(By.ID, "x-group")).select_by_value("channel")
    d.find_element(By.CSS_SELECTOR, '[data-testid="export"]').click()
    xlsx = eventually(
        lambda: next((p for p in tmp_path.glob("*.xlsx") if p.stat().st_size > 0), None),
        what="the XLSX download",
    )
    assert xlsx.name == f"fengqiao-{period['from']}-{period['to']}-week-channel.xlsx"
    series = api(
        stack, "followup", "/v1/stats/series", COUNTY, bucket="week", group_by="channel", **period
    )
    wb = load_workbook(xlsx)
    assert wb.sheetnames == ["报表", "说明"]
    rows = list(wb["报表"].iter_rows(values_only=True))
    assert rows[0] == tuple(HEADINGS.values())
    got = [(r[0], r[1], r[2], r[3]) for r in rows[1:]]
    want = [(i["bucket"], i["group"], i["received"], i["settled"]) for i in series["items"]]
    assert got == want
    assert any(g == "people" and n >= 1 for _, g, n, _ in got)
    about = {r[0]: r[1] for r in wb["说明"].iter_rows(values_only=True)}
    assert about["统计期间"] == f"{period['from']} 至 {period['to']}"
