"""Headless Chromium from Debian's packages, driven by Selenium (no Selenium Manager download)."""

from __future__ import annotations

import os
import shutil
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = os.environ.get("FENGQIAO_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FENGQIAO_CHROMEDRIVER", "/usr/bin/chromedriver")


def browser_available() -> bool:
    """Both the browser and its driver are installed (tests/browser/deps.sh)."""
    return bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER))


def new_driver(
    width: int = 1366, height: int = 768, download_dir: str | None = None
) -> webdriver.Chrome:
    """A fresh headless Chromium (its own profile: no cookies shared between people)."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--lang=zh-CN",
        f"--window-size={width},{height}",
        f"--user-data-dir={tempfile.mkdtemp(prefix='fq-chromium-')}",
    ):
        opts.add_argument(arg)
    # the page's console messages (CSP violations, script errors) for the tests to read
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if download_dir:
        opts.add_experimental_option(
            "prefs",
            {
                "download.default_directory": download_dir,
                "download.prompt_for_download": False,
                "safebrowsing.enabled": True,
            },
        )
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    return driver
