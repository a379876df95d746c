"""One account's partners trickle their responses (8 ports, a byte every 2 s, 64 requests)
beside a steady stream of another account's postbacks to a fast receiver: the other account's
postbacks stay on time, and every trickled delivery ends within its retry budget."""

import contextlib
import json
import time
import urllib.request

import pytest

from tests.drills.conftest import report
from tests.drills.stand import DRILL_SETTINGS, Stand, redis_for_drills
from tests.product import import_config, manage, scratch_environment, wait_until
from tests.receiver import TricklingReceiver

pytestmark = pytest.mark.drill

SLOW_KEY = "pbk_drill_slow_partners_0123456789"
PORTS = 8
SLOW_EVENTS = 8  # 8 events x 8 postbacks: 64 trickled requests, then 64 retries
RATE = 4  # events/s of the other account
SECONDS = 40  # long enough to span the trickled deliveries' first attempts and their retries
DEADLINE = int(DRILL_SETTINGS["POSTBACK_TOTAL_TIMEOUT"])


def slow_account(urls: list[str]) -> dict:
    postbacks = [
        {"event": "purchase", "kind": "custom", "destination_url": f"{url}/slow", "retry_attempts": 1} for url in urls
    ]
    return {
        "apps": [
            {
                "name": "Slow",
                "account": "Slow partners",
                "platform": "android",
                "package_name": "com.slow.app",
                "api_key": SLOW_KEY,
                "custom_events": ["purchase"],
                "postbacks": postbacks,
            }
        ]
    }


def send_slow_event(stand: Stand, event_id: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{stand.api_port}/api/v1/events",
        data=json.dumps({"event_id": event_id, "event": "purchase", "device": {"device_id": event_id}}).encode(),
        headers={"Authorization": f"Bearer {SLOW_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def slow_deliveries(stand: Stand) -> list[dict]:
    """The slow account's deliveries with their attempts, read by a fresh process."""
    script = (
        "import json; from postbacks.models import Delivery;"
        "print(json.dumps([{'status': d.status, 'attempts': d.attempts, 'max_attempts': d.max_attempts,"
        " 'deferrals': d.deferrals,"
        " 'log': [[a.outcome, a.error, a.duration_ms] for a in d.attempt_log.order_by('number')]}"
        " for d in Delivery.objects.filter(app__name='Slow')]))"
    )
    return json.loads(manage(stand.env, "shell", "-c", script).strip().splitlines()[-1])


def test_slow_partners_of_one_account_do_not_starve_another(tmp_path, receiver):
    with contextlib.ExitStack() as stack:
        trickling = [
            stack.enter_context(TricklingReceiver(part="headers" if port % 2 else "body", interval=2, stop_after=60))
            for port in range(PORTS)
        ]
        env = stack.enter_context(scratch_environment(tmp_path, redis=redis_for_drills()))
        stand = Stand.create(env, tmp_path, receiver)
        import_config(stand.env, slow_account([server.url for server in trickling]))
        try:
            stand.start_api()
            stand.start_workers()
            for number in range(SLOW_EVENTS):
                assert send_slow_event(stand, f"slow-{number}") == 202
            started = time.monotonic()
            for number in range(RATE * SECONDS):
                assert stand.send_event(f"fast-{number}") == 202
                time.sleep(max(0.0, started + (number + 1) / RATE - time.monotonic()))
            stand.wait_all_arrived(timeout=70)  # starved, they would come after the trickling ends (60 s)
            wait_until(
                lambda: all(delivery["status"] == "failed" for delivery in slow_deliveries(stand)),
                timeout=90,
                interval=2,
                message=lambda: f"{slow_deliveries(stand)}\n{stand.outputs()}",
            )
            ended_after = time.monotonic() - started
        finally:
            stand.processes.stop_all()
        trickled_requests = sum(server.count() for server in trickling)
        slow = slow_deliveries(stand)
    lateness = stand.lateness()
    p99 = lateness[int(len(lateness) * 0.99) - 1]
    assert len(lateness) == RATE * SECONDS
    assert p99 < 2.0, lateness  # the other account's postbacks stay on time
    assert len(slow) == PORTS * SLOW_EVENTS
    for delivery in slow:  # each ended within its budget: two attempts, each cut at the deadline
        assert (delivery["status"], delivery["attempts"], delivery["max_attempts"]) == ("failed", 2, 2), delivery
        assert [outcome for outcome, _error, _ms in delivery["log"]] == ["retry", "failed"], delivery
        assert all(error.startswith(f"Timed out after {DEADLINE} s") for _outcome, error, _ms in delivery["log"])
        assert all(ms < (DEADLINE + 1) * 1000 for _outcome, _error, ms in delivery["log"])
    assert trickled_requests == 2 * len(slow)  # every request recorded as an attempt: none sent again unseen
    deferrals = [delivery["deferrals"] for delivery in slow]
    report(
        "slow partners",
        trickled_deliveries=len(slow),
        trickled_requests=trickled_requests,
        trickled_ended_s=f"{ended_after:.0f}",
        deferrals_max=max(deferrals),
        deferrals_total=sum(deferrals),
        other_account_events=len(lateness),
        other_p50_s=f"{lateness[len(lateness) // 2]:.2f}",
        other_p99_s=f"{p99:.2f}",
    )
