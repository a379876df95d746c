"""A postback condition set in the admin, in a real browser: an event outside it is skipped, and
the event's page says which condition did not hold (issue 17 §4)."""

import json
import urllib.request

import pytest

from tests.browser.chromium import admin_login
from tests.product import (
    Processes,
    add_manager,
    free_port,
    http_ok,
    import_config,
    manage,
    scratch_environment,
    wait_until,
)

pytestmark = pytest.mark.browser

API_KEY = "pbk_browser_key_conditions_0123456789"
PASSWORD = "browser-test-password-2"


def send(base: str, event_id: str, country: str) -> None:
    body = {"event_id": event_id, "event": "install", "device": {"device_id": f"d-{event_id}"}, "country": country}
    request = urllib.request.Request(
        base + "/api/v1/events",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


def test_a_condition_set_in_the_admin_skips_an_event_and_says_why(tmp_path, receiver, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with scratch_environment(tmp_path) as env:
        manage(env, "migrate", "-v0")
        app = {"name": "Cond", "account": "Cond Co", "platform": "android", "package_name": "com.cond.app"}
        import_config(env, {"apps": [{**app, "api_key": API_KEY, "postbacks": []}]})
        app_pk = add_manager(env, account="Cond Co", app="Cond", password=PASSWORD)
        processes = Processes(env, tmp_path)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        processes.start("product", "manage.py", "runall", f"127.0.0.1:{port}")
        try:
            wait_until(lambda: http_ok(base + "/admin/login/"), timeout=30, message=processes.output("product"))
            admin_login(browser, base, username="manager", password=PASSWORD)

            browser.get(base + f"/admin/postbacks/postbackconfiguration/add/?app={app_pk}&kind=custom")
            Select(browser.find_element(By.NAME, "event")).select_by_value("install")
            Select(browser.find_element(By.NAME, "kind")).select_by_value("custom")
            browser.find_element(By.NAME, "destination_url").send_keys(receiver.url + "/north-america")
            browser.find_element(By.CSS_SELECTOR, 'input[name="macros"][value="event_id"]').click()
            conditions = browser.find_element(By.NAME, "conditions")
            conditions.clear()
            conditions.send_keys('[{"macro": "country", "op": "in", "value": ["US", "CA"]}]')
            browser.find_element(By.NAME, "_save").click()
            errors = [element.text for element in browser.find_elements(By.CSS_SELECTOR, ".errorlist, .errornote")]
            assert "was added successfully" in browser.page_source, errors

            send(base, "from-france", "FR")
            send(base, "from-texas", "US")
            [arrived] = receiver.wait_for(1, timeout=30)
            assert arrived.query["event_id"] == ["from-texas"]  # the French install never went out

            browser.get(base + "/admin/events/event/?q=from-france")
            browser.find_element(By.LINK_TEXT, "from-france").click()
            assert (
                "The condition “country is one of US, CA” does not hold: country is &#x27;FR&#x27;."
                in (browser.page_source)
                or "The condition “country is one of US, CA” does not hold: country is 'FR'." in browser.page_source
            )
        finally:
            processes.stop_all()
