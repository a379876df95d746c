"""Debian's headless chromium driven by selenium, for the browser test and the screenshots."""

from __future__ import annotations

import os
import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def chromium_installed() -> bool:
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


def chromium_start(*, width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    return driver


def admin_login(driver, base: str, *, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/admin/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()


def charts_drawn(driver) -> list[str]:
    """The data-drawn mark charts.js leaves on each chart it drew (its number of data sets)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('canvas[data-chart]')).map(c => c.dataset.drawn || '')"
    )
