"""What a person does in the console, as Selenium steps."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 60


def wait_for(driver: WebDriver, css: str, timeout: float = WAIT_S) -> WebElement:
    """The element once it is on the page."""
    el: WebElement = WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )
    return el


def sign_in_as(driver: WebDriver, console: str, staff_id: str) -> None:
    """登录 with the demo staff list (dev mode)."""
    driver.get(f"{console}/login")
    driver.find_element(By.CSS_SELECTOR, f'button[data-staff="{staff_id}"]').click()
    wait_for(driver, '[data-testid="who"]')
    assert driver.find_element(By.CSS_SELECTOR, '[data-testid="who"]').text == staff_id


def submit(driver: WebDriver, form: str, fields: dict[str, str] | None = None) -> None:
    """Fill a form of the case page by its test id and submit it."""
    el = driver.find_element(By.CSS_SELECTOR, f'[data-testid="form-{form}"]')
    for name, value in (fields or {}).items():
        field = el.find_element(By.NAME, name)
        if field.get_attribute("type") == "date":
            # a date input takes keystrokes in the locale's order; set the ISO value instead
            driver.execute_script("arguments[0].value = arguments[1]", field, value)
        else:
            field.clear()
            field.send_keys(value)
    el.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()


def status_of(driver: WebDriver) -> str:
    """The status code the case page shows."""
    return str(
        driver.find_element(By.CSS_SELECTOR, '[data-testid="case-status"]').get_attribute(
            "data-status"
        )
    )


def trail_actions(driver: WebDriver) -> list[str]:
    """The actions of the timeline, in order (read in one script: htmx swaps the timeline in
    while it polls, so element handles may go stale between two calls)."""
    actions: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('[data-testid=\"trail\"] li[data-action]'))"
        ".map(li => li.getAttribute('data-action'))"
    )
    return actions


def text_of(driver: WebDriver, css: str) -> str:
    """The text of an element, read in one script (safe inside polled fragments)."""
    text = driver.execute_script(
        "const el = document.querySelector(arguments[0]); return el ? el.innerText : null", css
    )
    assert text is not None, f"no element {css}"
    return str(text)


def wait_for_text(driver: WebDriver, css: str, prefix: str, timeout: float = WAIT_S) -> str:
    """Wait until an element's text starts with a prefix, reading it afresh on every poll: after
    a form posts, the old page (and its old flash message) stays until the new one replaces it,
    so a handle found too early goes stale or shows the previous message."""

    def shown(d: WebDriver) -> str | None:
        text = d.execute_script(
            "const el = document.querySelector(arguments[0]); return el ? el.innerText : null", css
        )
        return str(text) if text is not None and str(text).startswith(prefix) else None

    text: str = WebDriverWait(driver, timeout).until(shown)
    return text


def wait_trail(driver: WebDriver, action: str, timeout: float = WAIT_S) -> list[str]:
    """Wait until the timeline (refreshed by htmx polling) shows an action."""
    WebDriverWait(driver, timeout).until(lambda d: action in trail_actions(d))
    return trail_actions(driver)
