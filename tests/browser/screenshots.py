"""Screenshots of the dashboard and the statistics page for docs/screenshots/, taken with the
browser test's chromium on the demo data and a made-up day of deliveries (demo_history.py):

    SECRET_KEY=x .venv/bin/python -m tests.browser.screenshots docs/screenshots
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.browser.chromium import admin_login, charts_drawn, chromium_start
from tests.product import Processes, free_port, http_ok, manage, scratch_environment, wait_until

PASSWORD = "screenshot-password-1"


def screenshots_take(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, scratch_environment(Path(scratch)) as env:
        manage(env, "migrate", "-v0")
        manage(env, "demo_setup")
        manage(
            env,
            "shell",
            "-c",
            "from django.contrib.auth.models import User; user = User.objects.get(username='admin');"
            f"user.set_password('{PASSWORD}'); user.save();"
            "from tests.browser.demo_history import history_fill;"
            f"history_fill(closed_port={free_port()})",
        )
        processes = Processes(env, Path(scratch))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        processes.start("web", "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}")
        browser = chromium_start(width=1400, height=1500)
        try:
            wait_until(lambda: http_ok(base + "/admin/login/"), timeout=30, message=processes.output("web"))
            admin_login(browser, base, username="admin", password=PASSWORD)
            for page, name in (("/admin/", "dashboard"), ("/admin/postbacks/delivery/stats/", "statistics")):
                browser.get(base + page)
                assert all(charts_drawn(browser)), f"{name}: a chart was not drawn"
                height = browser.execute_script("return document.body.scrollHeight")
                browser.set_window_size(1400, min(max(height, 800), 2400))
                browser.save_screenshot(str(folder / f"{name}.png"))
        finally:
            browser.quit()
            processes.stop_all()


if __name__ == "__main__":
    screenshots_take(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
