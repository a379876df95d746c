"""Workers stopped, the dispatcher still running: it claims the due deliveries again and again,
and nobody sends them. /healthz and the backlog gauges must still show them waiting."""

import time
import urllib.request

import pytest

from tests.drills.conftest import report
from tests.product import wait_until

pytestmark = pytest.mark.drill

MAX_BACKLOG_AGE = 5  # seconds (HEALTH_MAX_BACKLOG_AGE for this drill)


def backlog_gauges(stand) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{stand.api_port}/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return {
        name: float(value)
        for name, value in (line.split(" ", 1) for line in lines if line.startswith("postbacks_backlog_"))
    }


def test_health_turns_503_when_no_worker_sends_what_the_dispatcher_claims(stand):
    stand.env["HEALTH_MAX_BACKLOG_AGE"] = str(MAX_BACKLOG_AGE)
    stand.start_api()
    stand.processes.start("dispatcher", "manage.py", "dispatch_postbacks")  # and no cluster
    assert stand.health()[0] == 200
    assert stand.send_event("waiting-1") == 202
    sent_at = time.monotonic()
    wait_until(
        lambda: stand.health()[0] == 503,
        timeout=MAX_BACKLOG_AGE + 5,
        message=lambda: f"/healthz said {stand.health()}\n{stand.outputs()}",
    )
    unhealthy_after = time.monotonic() - sent_at
    status, body = stand.health()
    gauges = backlog_gauges(stand)
    claimed = "sending" in stand.deliveries()  # the dispatcher did claim it: that is the case at hand
    stand.processes.stop_all()
    assert status == 503 and body["backlog"] == 1 and body["checks"]["deliveries"].startswith("stalled")
    assert claimed
    assert gauges["postbacks_backlog_deliveries"] == 1
    assert gauges["postbacks_backlog_oldest_due_seconds"] >= MAX_BACKLOG_AGE
    assert not stand.receiver.received
    report("stopped workers", unhealthy_after_s=f"{unhealthy_after:.1f}", limit_s=MAX_BACKLOG_AGE)
