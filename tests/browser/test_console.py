"""The console in headless Chromium against the real services: a mediator takes a case from
assigned to closed through the forms, a coordinator's overview matches /v1/stats and exports
XLSX, and a mediator of another channel sees no foreign case anywhere."""

from __future__ import annotations

import json
from collections.abc import Callable
from io import BytesIO
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from services.console.views import percent
from tests.browser.pages import (
    sign_in_as,
    status_of,
    submit,
    text_of,
    wait_for,
    wait_for_text,
    wait_trail,
)
from tests.browser.stack import Stack, case_in_ledger, case_in_mediation, eventually

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

MEDIATOR = "med-people-grid-day"  # 人民调解, grid tier, organisation people-grid
FOREIGN = "med-police-grid-day"  # 公调对接, same tier and area
COORDINATOR = "coordinator-grid"  # grid tier, grids 522731001001 / 522731001002
GRID = "522731001001"
NEIGHBOUR = "网格员走访：两户邻居因楼上漏水把楼下天花板泡坏发生争吵，楼上不愿赔偿维修费。"

Browser = Callable[..., WebDriver]


def session_cookies(driver: WebDriver) -> dict[str, str]:
    """The browser's cookies (HttpOnly ones too), to fetch downloads as that person."""
    return {c["name"]: c["value"] for c in driver.get_cookies()}


def test_the_journey_a_report_taken_to_closed_by_a_mediator_with_a_coordinator_watching(
    stack: Stack, browser: Browser
) -> None:
    """The issue's 'done when': sign in as the demo mediator and coordinator and take a case
    from received to closed through the forms, without curl."""
    console = stack.url("console")
    d = browser()
    sign_in_as(d, console, MEDIATOR)
    # the report itself through the dev-mode 演示上报 form (intake, with the demo grid key)
    d.get(f"{console}/demo/report")
    submit(d, "report", {"text": NEIGHBOUR, "phone": "13800001111"})
    filed = wait_for(d, '[data-testid="report-filed"] a[data-case]')
    case_id = str(filed.get_attribute("data-case"))
    case_in_mediation(stack, MEDIATOR, case_id, "assigned")

    # the coordinator of the grid finds it in the ledger's list, on the map, and on its page
    c = browser()
    sign_in_as(c, console, COORDINATOR)
    c.get(f"{console}/cases?status=assigned")
    wait_for(c, f'#case-rows a[data-case="{case_id}"]', timeout=90).click()
    assert status_of(c) == "assigned"
    assert wait_trail(c, "assign")[:2] == ["receive", "triage"]
    # a coordinator of the case's area sees the exact place (shared.scope: clear sight)
    assert "精确位置" in c.find_element(By.CSS_SELECTOR, '[data-testid="place"]').text
    c.get(f"{console}/overview")
    assert wait_for(c, f'[data-testid="map"] circle[data-case="{case_id}"]')

    d.get(f"{console}/my")
    wait_for(d, f'[data-testid="my-cases"] a[data-case="{case_id}"]').click()
    wait_for(d, '[data-testid="form-accept"]')
    assert status_of(d) == "assigned"
    assert "邻居" in d.find_element(By.CSS_SELECTOR, '[data-testid="report-text"]').text

    submit(d, "accept")
    assert wait_for_text(d, '[data-testid="action-done"]', "已签收") == "已签收"
    assert status_of(d) == "accepted"
    wait_trail(d, "accept")
    # now the assigned mediator: personal data in clear (and audited by mediation)
    assert "明文" in d.find_element(By.CSS_SELECTOR, '[data-testid="pii"]').text
    assert "13800001111" in d.find_element(By.CSS_SELECTOR, '[data-testid="contact"]').text

    submit(d, "note", {"text": "已电话联系双方，约定周五到村委会面谈。"})
    assert wait_for_text(d, '[data-testid="action-done"]', "已记录调解进展") == "已记录调解进展"
    assert status_of(d) == "mediating"

    submit(
        d,
        "agree",
        {
            "terms": "楼上住户于十日内赔偿维修费用三千元，双方不再追究。",
            "amount_yuan": "3000",
            "performance_due": "2026-12-20",
        },
    )
    agreement = wait_for(d, '[data-testid="agreement"]')
    assert "3000 元" in agreement.text and "2026-12-20" in agreement.text
    # follow-up may already have scheduled the visits by the time the page is drawn
    assert status_of(d) in ("agreed", "follow_up")
    actions = wait_trail(d, "agree")
    assert actions.index("accept") < actions.index("agree")
    assert "调解中 → 已达成协议" in text_of(d, '[data-testid="trail"] li[data-action="agree"]')

    pdf = httpx.get(
        f"{console}/cases/{case_id}/agreement.pdf", cookies=session_cookies(d), timeout=30
    )
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    # follow-up schedules the visits (回访); two honoured visits close the case
    case_in_ledger(stack, MEDIATOR, case_id, "follow_up")
    for round_ in (1, 2):
        d.get(f"{console}/cases/{case_id}")
        submit(d, "visit", {"note": f"第{round_}次回访：协议已履行。"})
        assert wait_for_text(d, '[data-testid="action-done"]', "已登记回访") == "已登记回访"
    case_in_ledger(stack, MEDIATOR, case_id, "closed")
    d.get(f"{console}/cases/{case_id}")
    assert status_of(d) == "closed"
    assert "哈希链校验通过" in text_of(d, '[data-testid="verify"]')
    assert d.find_elements(By.CSS_SELECTOR, '[data-testid="no-actions"]')
    visits = d.find_element(By.CSS_SELECTOR, '[data-testid="visits"]').text
    assert visits.count("已回访") == 2 and "已履行" in visits
    assert "精确位置" in d.find_element(By.CSS_SELECTOR, '[data-testid="place"]').text

    # the coordinator's page shows the same life: closed, every step on the verified trail
    c.get(f"{console}/cases/{case_id}")
    assert status_of(c) == "closed"
    steps = wait_trail(c, "close")
    for action in ("receive", "triage", "assign", "accept", "note", "agree", "visit", "close"):
        assert action in steps, (action, steps)
    assert steps.index("agree") < steps.index("visit") < steps.index("close")
    assert "哈希链校验通过" in text_of(c, '[data-testid="verify"]')


def test_a_refused_action_shows_the_services_reason(stack: Stack, browser: Browser) -> None:
    case_id = stack.report(NEIGHBOUR, GRID, "13800002222")
    case_in_mediation(stack, MEDIATOR, case_id, "assigned")
    console = stack.url("console")
    d = browser()
    sign_in_as(d, console, MEDIATOR)
    d.get(f"{console}/cases/{case_id}")
    wait_for(d, '[data-testid="form-accept"]')
    # signed for meanwhile in another tab: the form on this page is now stale
    r = httpx.post(
        f"{stack.url('mediation')}/v1/cases/{case_id}/accept", headers=stack.headers(MEDIATOR)
    )
    assert r.status_code == 200, r.text
    submit(d, "accept")
    error = wait_for(d, '[data-testid="action-error"]')
    assert "409" in error.text
    assert "only an assigned case can be signed for" in error.text
    assert status_of(d) == "accepted"


NUMBERS = """
const t = id => document.querySelector(`[data-testid="${id}"]`).innerText.trim();
const c = id => Object.fromEntries(
  Array.from(document.querySelectorAll(`[data-testid="${id}"] dd[data-code]`))
    .map(dd => [dd.getAttribute('data-code'), parseInt(dd.innerText, 10)]));
return {
  total: parseInt(t('kpi-total'), 10), backlog: parseInt(t('kpi-backlog'), 10),
  overdue: parseInt(t('kpi-overdue'), 10), first_tier: t('kpi-first-tier'),
  success: t('kpi-success'), on_time: t('kpi-on-time'),
  by_status: c('by-status'), by_channel: c('by-channel'), by_tier: c('by-tier'),
  by_dispute_type: c('by-type'),
};
"""


def _numbers(d: WebDriver) -> dict[str, Any]:
    """What the overview shows: the headline figures and the counts by status/channel/tier/type
    (read in one script: htmx may swap the numbers in while they are read)."""
    shown: dict[str, Any] = d.execute_script(NUMBERS)
    return shown


def _expected(stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "total": stats["total"],
        "backlog": stats["backlog"],
        "overdue": stats["overdue"],
        "first_tier": percent(stats["settled_at_first_tier"]["rate"]),
        "success": percent(stats["mediation_success"]["rate"]),
        "on_time": percent(stats["on_time"]["rate"]),
        "by_status": stats["by_status"],
        "by_channel": stats["by_channel"],
        "by_tier": stats["by_tier"],
        "by_dispute_type": stats["by_dispute_type"],
    }


def test_coordinator_overview_matches_stats_and_the_series(stack: Stack, browser: Browser) -> None:
    case_id = stack.report(NEIGHBOUR, GRID, "13800003333", where=(26.5834, 107.9772))
    case_in_ledger(stack, COORDINATOR, case_id, "assigned")
    console = stack.url("console")
    d = browser()
    sign_in_as(d, console, COORDINATOR)
    assert d.current_url.endswith("/overview")
    since = str(wait_for(d, '[data-testid="since"]').get_attribute("data-since"))

    def stats() -> dict[str, Any]:
        r = httpx.get(
            f"{stack.url('followup')}/v1/stats",
            params={"since": since},
            headers=stack.headers(COORDINATOR),
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def matches() -> dict[str, Any] | None:
        d.get(f"{console}/overview?days=30")
        wait_for(d, '[data-testid="kpi-total"]')
        shown, expected = _numbers(d), _expected(stats())
        return shown if shown == expected else None

    shown = eventually(matches, what="overview numbers equal to /v1/stats")
    assert shown["total"] >= 1 and shown["by_channel"].get("people", 0) >= 1
    assert wait_for(d, "canvas#trend[data-drawn]")  # Chart.js, served by the console, drew it
    assert d.find_elements(By.CSS_SELECTOR, f'[data-testid="map"] circle[data-case="{case_id}"]')

    areas = d.find_element(By.CSS_SELECTOR, '[data-testid="areas"]')
    assert areas.find_elements(By.CSS_SELECTOR, f'tr[data-area="{GRID}"]')
    # the trend is followup's weekly series for the same days
    since_el = d.find_element(By.CSS_SELECTOR, '[data-testid="since"]')
    series = httpx.get(
        f"{stack.url('followup')}/v1/stats/series",
        params={
            "from": since_el.get_attribute("data-from"),
            "to": since_el.get_attribute("data-to"),
            "bucket": "week",
        },
        headers=stack.headers(COORDINATOR),
    ).json()
    received = d.find_element(By.ID, "trend").get_attribute("data-received")
    assert json.loads(str(received)) == [i["received"] for i in series["items"]]


def test_a_mediator_of_another_channel_sees_no_foreign_case(stack: Stack, browser: Browser) -> None:
    case_id = stack.report(NEIGHBOUR, GRID, "13800004444", where=(26.5841, 107.9779))
    case_in_mediation(stack, MEDIATOR, case_id, "assigned")
    case_in_ledger(stack, MEDIATOR, case_id, "assigned")
    console = stack.url("console")
    d = browser()
    sign_in_as(d, console, FOREIGN)
    paths = ("/my", "/cases", "/cases?status=assigned", "/overview?days=365", "/warnings?status=")
    for path in paths:
        d.get(console + path)
        wait_for(d, "main h1")
        assert case_id not in d.page_source, path
        assert case_id[:8] not in d.page_source, path
    d.get(console + "/cases")
    cells: list[str] = d.execute_script(
        "return Array.from(document.querySelectorAll("
        "'[data-testid=\"case-list\"] tbody td:nth-child(6)')).map(td => td.innerText)"
    )
    channels = {text.split(" · ")[0] for text in cells}
    assert channels <= {"公调对接"}, channels

    d.get(f"{console}/cases/{case_id}")
    assert wait_for(d, '[data-testid="not-found"]')
    assert "不在您的职责范围内" in d.page_source

    cookies = session_cookies(d)
    pdf = httpx.get(f"{console}/cases/{case_id}/agreement.pdf", cookies=cookies)
    assert pdf.status_code == 404
    trail = httpx.get(f"{console}/cases/{case_id}/trail", cookies=cookies)
    assert trail.status_code == 204 and not trail.content
    # the overview's figures and the 报表 count only the police channel's own cases
    stats = httpx.get(f"{stack.url('followup')}/v1/stats", headers=stack.headers(FOREIGN)).json()
    assert set(stats["by_channel"]) <= {"police"}
    export = httpx.get(
        f"{console}/overview/export.xlsx?days=365&group_by=channel", cookies=cookies, timeout=60
    )
    assert export.status_code == 200
    wb = load_workbook(BytesIO(export.content))
    groups = {row[1] for row in wb["报表"].iter_rows(min_row=2, values_only=True)}
    assert groups <= {"police"}, groups
    values = {str(c) for ws in wb for row in ws.iter_rows(values_only=True) for c in row}
    assert case_id not in values
    # and the action routes refuse: mediation answers 404 for a case outside the scope
    d.get(f"{console}/my")
    token = d.find_element(By.NAME, "csrf_token").get_attribute("value")
    r = httpx.post(
        f"{console}/cases/{case_id}/act/accept",
        data={"csrf_token": str(token)},
        cookies=cookies,
    )
    assert r.status_code == 404
    assert "不在您的职责范围内" in r.text


UNLABELLED = """
return Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML);
"""


# nothing jumps the natural Tab order (a positive tabindex would)
TABINDEX = (
    "return Array.from(document.querySelectorAll('[tabindex]'))"
    ".filter(el => el.tabIndex > 0).map(el => el.outerHTML.slice(0, 80));"
)

# WCAG 2 contrast of every visible text against the background it sits on (≥ 4.5:1; 3:1 for
# large text), computed from the styles the browser applied
LOW_CONTRAST = """
const lum = c => { const v = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(x => x / 255)
  .map(x => x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
const bg = el => { for (let e = el; e; e = e.parentElement) {
  const c = getComputedStyle(e).backgroundColor; const a = c.match(/[\\d.]+/g);
  if (a && (a.length < 4 || Number(a[3]) > 0.5)) return c; } return 'rgb(255,255,255)'; };
const bad = [];
for (const el of document.querySelectorAll('body *')) {
  if (el.closest('svg') || !el.offsetParent && el.tagName !== 'BODY') continue;
  const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
  if (!own) continue;
  const s = getComputedStyle(el);
  if (s.visibility === 'hidden' || Number(s.opacity) < 0.5) continue;
  const a = lum(s.color), b = lum(bg(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const px = parseFloat(s.fontSize);
  const large = px >= 24 || (px >= 18.66 && Number(s.fontWeight) >= 700);
  const what = el.textContent.trim().slice(0, 30);
  if (ratio < (large ? 3 : 4.5)) bad.push(`${el.tagName} ${ratio.toFixed(2)} ${what}`);
}
return bad;
"""

# what a broken page logs: a policy violation, a script error, an asset or page that failed
# (an htmx poll cut short by the next navigation is not one of them)
BROKEN = ("Content Security Policy", "Uncaught", "Failed to load resource", "Refused to")


def test_screens_are_labelled_keyboard_reachable_and_fit_a_phone(
    stack: Stack, browser: Browser
) -> None:
    case_id = stack.report(NEIGHBOUR, GRID, "13800005555")
    case_in_mediation(stack, MEDIATOR, case_id, "assigned")
    console = stack.url("console")
    d = browser()
    d.get(f"{console}/login")
    assert d.execute_script(UNLABELLED) == []
    sign_in_as(d, console, MEDIATOR)
    coordinator = browser()
    sign_in_as(coordinator, console, "coordinator-county")
    for who, path in [
        *((d, p) for p in ("/my", "/cases", f"/cases/{case_id}", "/overview", "/warnings")),
        *((coordinator, p) for p in ("/overview", "/warnings?status=", f"/cases/{case_id}")),
    ]:
        check_page(who, console + path)
    phone = browser(390, 844)
    sign_in_as(phone, console, MEDIATOR)
    county_phone = browser(390, 844)
    sign_in_as(county_phone, console, "coordinator-county")
    for who, path in [
        *((phone, p) for p in ("/my", "/cases", f"/cases/{case_id}", "/overview")),
        *((county_phone, p) for p in ("/overview", "/warnings?status=", f"/cases/{case_id}")),
    ]:
        who.get(console + path)
        wait_for(who, "main h1")
        overflow = who.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, (path, overflow)


def check_page(d: WebDriver, url: str) -> None:
    """Labels, no broken asset or script, lang, skip link first, nothing out of the Tab order,
    text contrast, and no sideways scroll at this width."""
    d.get(url)
    wait_for(d, "main h1")
    assert d.execute_script(UNLABELLED) == [], url
    # no script error and no Content-Security-Policy violation (assets are all local)
    errors = [
        e
        for e in d.get_log("browser")
        if e["level"] == "SEVERE" and any(m in e["message"] for m in BROKEN)
    ]
    assert errors == [], (url, errors)
    assert d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    # the first Tab lands on the skip link, which leads to the main content
    d.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert d.switch_to.active_element.get_attribute("class") == "skip", url
    assert d.execute_script(TABINDEX) == [], url
    assert d.execute_script(LOW_CONTRAST) == [], url
    overflow = d.execute_script("return document.documentElement.scrollWidth - innerWidth")
    assert overflow <= 0, (url, overflow)


def test_the_case_list_refreshes_by_itself_when_the_ledger_changes(
    stack: Stack, browser: Browser
) -> None:
    console = stack.url("console")
    d = browser()
    sign_in_as(d, console, MEDIATOR)
    d.get(f"{console}/cases")
    wait_for(d, "#case-rows")
    etag_js = "return document.querySelector('#case-rows').getAttribute('data-etag')"
    first_etag = d.execute_script(etag_js)
    case_id = stack.report(NEIGHBOUR, GRID, "13800006666")
    # no reload: htmx polls with the last ETag and swaps the rows in once the ledger changed
    wait_for(d, f'#case-rows a[data-case="{case_id}"]', timeout=90)
    assert d.execute_script(etag_js) != first_etag
    assert d.execute_script("return performance.getEntriesByType('navigation').length") == 1


def test_a_mediator_returns_a_case_with_a_reason_and_it_leaves_their_list(
    stack: Stack, browser: Browser
) -> None:
    case_id = stack.report(NEIGHBOUR, GRID, "13800007777")
    case_in_mediation(stack, MEDIATOR, case_id, "assigned")
    console = stack.url("console")
    d = browser()
    sign_in_as(d, console, MEDIATOR)
    d.get(f"{console}/cases/{case_id}")
    submit(d, "return", {"reason": "涉及借款合同，不属于人民调解受理范围。"})

    # triage routes it again without the people channel: it is someone else's case now
    def routed_elsewhere() -> bool:
        r = httpx.get(
            f"{stack.url('followup')}/v1/cases/{case_id}", headers=stack.headers(COORDINATOR)
        )
        return r.status_code == 200 and r.json()["channel"] not in (None, "people")

    eventually(routed_elsewhere, what="the returned case routed to another channel")
    trail = httpx.get(
        f"{stack.url('followup')}/v1/cases/{case_id}/trail", headers=stack.headers(COORDINATOR)
    ).json()["entries"]
    ret = next(e for e in trail if e["action"] == "return")
    assert ret["actor"] == f"user:{MEDIATOR}" and "借款合同" in ret["reason"]
    d.get(f"{console}/my")
    wait_for(d, "main h1")
    assert case_id not in d.page_source
    d.get(f"{console}/cases/{case_id}")
    assert wait_for(d, '[data-testid="not-found"]')


LOAN = "网格员走访：王某借给同村李某十五万元用于生意周转，到期未还，多次催讨无果，请求调解。"


def test_a_court_mediator_extends_the_mediation_deadline_once_through_the_form(
    stack: Stack, browser: Browser
) -> None:
    case_id = stack.report(LOAN, GRID, "13800008888")
    routed = eventually(
        lambda: (
            r.json()
            if (
                r := httpx.get(
                    f"{stack.url('followup')}/v1/cases/{case_id}",
                    headers=stack.headers("coordinator-county"),
                )
            ).status_code
            == 200
            and r.json()["status"] == "assigned"
            else None
        ),
        what="the loan case assigned",
    )
    assert routed["channel"] == "court", routed  # R5: a loan of ≥ 100,000 yuan
    mediator = f"med-court-{routed['tier']}-day"
    console = stack.url("console")
    d = browser()
    sign_in_as(d, console, mediator)
    d.get(f"{console}/cases/{case_id}")
    submit(d, "accept")
    assert wait_for_text(d, '[data-testid="action-done"]', "已签收") == "已签收"
    before = case_in_mediation(stack, mediator, case_id, "accepted")["mediation_due"]
    submit(d, "extend", {"reason": "双方同意延长调解期限，等待借款凭证核实。"})
    assert wait_for_text(d, '[data-testid="action-done"]', "已延期") == "已延期"
    after = case_in_mediation(stack, mediator, case_id, "accepted")
    assert after["extended_at"] is not None and after["mediation_due"] > before
    wait_trail(d, "extend")
    assert "等待借款凭证核实" in text_of(d, '[data-testid="trail"] li[data-action="extend"]')
    assert not d.find_elements(By.CSS_SELECTOR, '[data-testid="form-extend"]')  # only once
