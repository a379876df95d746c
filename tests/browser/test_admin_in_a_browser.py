"""The whole product driven in a real headless browser (Debian's chromium, via selenium):
log in to the admin, create a custom postback, send an event through the API, and see the
delivery with its response in the log; and a failing partner raises an alert that reaches a
webhook and pauses the postback, which Resume sends again; and the dashboard counts the delivery
on its drawn chart."""

import json
import urllib.request

import pytest

from tests.browser.chromium import admin_login, charts_drawn
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
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.browser

API_KEY = "pbk_browser_key_0123456789abcdefgh"
PASSWORD = "browser-test-password-1"


def log_in(browser, base: str) -> None:
    admin_login(browser, base, username="manager", password=PASSWORD)
    assert "Site administration" in browser.page_source or "Configuration and delivery" in browser.title


def post_event(base: str, event_id: str) -> None:
    request = urllib.request.Request(
        base + "/api/v1/events",
        data=json.dumps(
            {
                "event_id": event_id,
                "event": "purchase",
                "device": {"device_id": "d-1"},
                "revenue": "2.50",
                "currency": "EUR",
            }
        ).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


def product_with_manager(env: dict[str, str], postbacks: list[dict]) -> str:
    """Migrate, import one app with `postbacks`, add the manager; returns the app's pk."""
    manage(env, "migrate", "-v0")
    import_config(
        env,
        {
            "apps": [
                {
                    "name": "Browser",
                    "account": "Browser Co",
                    "platform": "android",
                    "package_name": "com.browser.app",
                    "api_key": API_KEY,
                    "custom_events": ["purchase"],
                    "postbacks": postbacks,
                }
            ]
        },
    )
    return add_manager(env, account="Browser Co", app="Browser", password=PASSWORD)


def test_create_a_postback_send_an_event_and_read_the_delivery_in_the_log(tmp_path, receiver, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with scratch_environment(tmp_path) as env:
        app_pk = product_with_manager(env, [])
        processes = Processes(env, tmp_path)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        processes.start("product", "manage.py", "runall", f"127.0.0.1:{port}")
        try:
            wait_until(lambda: http_ok(base + "/admin/login/"), timeout=30, message=processes.output("product"))

            log_in(browser, base)

            # As the app page's "add a postback" link does: the app chosen, its events offered.
            browser.get(base + f"/admin/postbacks/postbackconfiguration/add/?app={app_pk}")
            Select(browser.find_element(By.NAME, "event")).select_by_value("purchase")
            Select(browser.find_element(By.NAME, "kind")).select_by_value("custom")
            browser.find_element(By.NAME, "destination_url").send_keys(receiver.url + "/from-browser")
            for macro in ("event_id", "revenue"):
                browser.find_element(By.CSS_SELECTOR, f'input[name="macros"][value="{macro}"]').click()
            browser.find_element(By.NAME, "title").send_keys("Purchases to the warehouse")
            browser.find_element(By.NAME, "_save").click()
            errors = [element.text for element in browser.find_elements(By.CSS_SELECTOR, ".errorlist, .errornote")]
            assert "was added successfully" in browser.page_source, errors

            post_event(base, "browser-1")
            [arrived] = receiver.wait_for(1, timeout=30)
            assert arrived.path == "/from-browser" and arrived.query["event_id"] == ["browser-1"]

            browser.get(base + "/admin/postbacks/delivery/")
            assert "browser-1" in browser.page_source or "Purchases to the warehouse" in browser.page_source
            browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr th a").click()
            page = browser.page_source
            assert arrived.headers["x-delivery-id"] in page  # the delivery the receiver got
            assert "/from-browser?event_id=browser-1" in page  # what was sent
            assert "200" in page and "delivered" in page.lower()  # what the partner said

            # The dashboard (the admin's index) counts it, and Chart.js, served from our own
            # static files, drew both charts.
            browser.get(base + "/admin/")
            dashboard = browser.find_element(By.ID, "dashboard")
            assert "1\ndelivered" in dashboard.text and "100.0 %" in dashboard.text
            assert charts_drawn(browser) == ["3", "2"]  # outcomes: 3 data sets; response times: 2
            assert browser.execute_script("return typeof Chart") == "function"
            assert browser.find_element(By.ID, "chart-outcomes").size["height"] > 100
            browser.get(base + "/admin/postbacks/delivery/stats/")
            assert charts_drawn(browser) == ["3", "2"]
            assert "Purchases to the warehouse" in browser.find_element(By.ID, "per-configuration").text
        finally:
            processes.stop_all()


def test_failures_raise_an_alert_at_a_webhook_pause_the_postback_and_resume_sends_what_was_held(
    tmp_path, receiver, browser
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    receiver.default = Reply(status=500)
    postback = {
        "event": "purchase",
        "kind": "custom",
        "destination_url": receiver.url + "/partner",
        "method": "GET",
        "macros": ["event_id"],
        "status": "active",
        "match_event": "",
        "title": "Purchases to the warehouse",
        "supply_network_data": False,
        "delay_seconds": 0,
        "retry_attempts": 0,
    }
    with scratch_environment(tmp_path) as env, Receiver() as hook:
        product_with_manager(env, [postback])
        alerting = {
            "ALERT_WEBHOOK_URL": hook.url + "/alerts",
            "ALERT_CONSECUTIVE_FAILURES": "2",
            "ALERT_FAILURE_RATE_PERCENT": "0",
            "ALERT_PAUSE": "true",
        }
        processes = Processes(env, tmp_path)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        processes.start("product", "manage.py", "runall", f"127.0.0.1:{port}", env=alerting)
        try:
            wait_until(lambda: http_ok(base + "/admin/login/"), timeout=30, message=processes.output("product"))
            post_event(base, "fail-1")
            receiver.wait_for(1, timeout=30)
            post_event(base, "fail-2")
            [alert] = hook.wait_for(1, timeout=30)
            message = json.loads(alert.body)
            assert alert.path == "/alerts" and message["kind"] == "failing" and message["paused"] is True
            assert message["text"].startswith("Postbacks failing: Purchases to the warehouse (Browser): 2 attempts")
            assert len(receiver.received) == 2

            post_event(base, "held-1")  # paused: held, not sent
            log_in(browser, base)
            browser.get(base + "/admin/postbacks/delivery/undelivered/")
            assert "Held: its configuration is paused since" in browser.page_source
            assert len(receiver.received) == 2

            browser.get(base + "/admin/postbacks/postbackconfiguration/")
            page = browser.page_source
            assert "Paused: Purchases to the warehouse." in page and "PAUSED" in page

            receiver.default = Reply(status=200)
            browser.find_element(By.CSS_SELECTOR, "#result_list input.action-select").click()
            Select(browser.find_element(By.NAME, "action")).select_by_value("resume")
            browser.find_element(By.CSS_SELECTOR, "#changelist-form button[name=index]").click()
            # The click returns once the form is sent; the answer page may still be loading.
            resumed = "Resumed: 1 held delivery will be sent, oldest first."
            wait_until(lambda: resumed in browser.page_source, timeout=10, message=lambda: browser.page_source[-2000:])

            arrived = receiver.wait_for(3, timeout=30)
            assert [request.query["event_id"] for request in arrived] == [["fail-1"], ["fail-2"], ["held-1"]]
            alerts = hook.wait_for(2, timeout=30)
            assert json.loads(alerts[1].body)["kind"] == "recovered"
            browser.get(base + "/admin/postbacks/postbackconfiguration/")
            assert "PAUSED" not in browser.page_source
        finally:
            processes.stop_all()
