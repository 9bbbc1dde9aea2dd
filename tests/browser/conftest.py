"""One stack for the browser tests: the four services and the console as processes on free
ports, against the shared broker with fresh topics, and a seeded demo county."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver

from tests.browser.driver import browser_available, new_driver
from tests.browser.stack import Stack, start_stack

pytestmark = [pytest.mark.kafka, pytest.mark.browser]


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """scripts/run.py with its own data directory and topic prefix; the console polls every 1 s."""
    import uuid

    if not browser_available():
        pytest.fail(
            "chromium/chromedriver missing: run `make browser-deps` (tests/browser/deps.sh)"
        )
    data = tmp_path_factory.mktemp("console-stack")
    s = start_stack(data, f"br{uuid.uuid4().hex[:8]}.", {"CONSOLE_POLL_SECONDS": "1"})
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Callable[..., WebDriver]]:
    """A factory of fresh headless Chromium sessions (one per person), all closed afterwards."""
    drivers: list[WebDriver] = []

    def make(width: int = 1366, height: int = 768) -> WebDriver:
        d = new_driver(width, height, download_dir=str(tmp_path))
        drivers.append(d)
        return d

    yield make
    for d in drivers:
        d.quit()
