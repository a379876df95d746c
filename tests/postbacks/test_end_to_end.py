"""The whole product as it runs: web server, django-q2 cluster and dispatcher in their own
processes (`manage.py runall`), its own database, a real receiver on 127.0.0.1.

A separately started cluster cannot see pytest-django's test database, so each run makes a
scratch database: a SQLite file, or a new PostgreSQL database when DATABASE_URL points to one.
The Redis variant runs when REDIS_URL is set (and must, under CI=true).
"""

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.product import free_port, scratch_environment

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "pbk_end_to_end_test_key_0123456789"
EVENTS = 30


@pytest.fixture
def scratch_env(tmp_path):
    """Environment for the product's processes, with a database of their own."""
    with scratch_environment(tmp_path) as env:
        yield env


def manage(env, *args, stdin=None):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, check=True
    )


def run_product_and_send_events(env, receiver) -> list:
    manage(env, "migrate", "-v0")
    config = {
        "apps": [
            {
                "name": "E2E",
                "account": "E2E",
                "platform": "android",
                "package_name": "com.e2e.app",
                "api_key": API_KEY,
                "custom_events": ["purchase"],
                "postbacks": [
                    {
                        "event": "purchase",
                        "kind": "custom",
                        "destination_url": receiver.url + "/pb/{event_name}",
                        "macros": ["event_id", "revenue"],
                        "retry_attempts": 3,
                    }
                ],
            }
        ]
    }
    manage(env, "import_postbacks", "-", stdin=json.dumps(config))
    port = free_port()
    runner = subprocess.Popen(
        [sys.executable, "manage.py", "runall", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(runner.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/schema/", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        accepted_at = {}
        for number in range(EVENTS):
            body = json.dumps(
                {
                    "event_id": f"e2e-{number}",
                    "event": "purchase",
                    "device": {"device_id": f"device-{number % 7}"},
                    "revenue": "1.25",
                    "currency": "EUR",
                }
            ).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/events",
                data=body,
                headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 202
                assert json.loads(response.read())["postbacks_scheduled"] == 1
            accepted_at[f"e2e-{number}"] = time.monotonic()
        received = receiver.wait_for(EVENTS, timeout=60)
        time.sleep(1)  # anything extra (a duplicate) would arrive now
        received = list(receiver.received)
        erase_a_device_through_the_workers(port)
    finally:
        runner.send_signal(signal.SIGINT)
        try:
            runner.wait(timeout=40)
        except subprocess.TimeoutExpired:
            runner.kill()
    assert len(received) == EVENTS, "".join(output[-40:])
    return [(request, accepted_at[request.query["event_id"][0]]) for request in received]


def api(port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def erase_a_device_through_the_workers(port: int) -> None:
    """An erasure is queued by the dispatcher and carried out by a worker within seconds."""
    status, accepted = api(port, "/api/v1/erasures", {"device": {"device_id": "device-0"}})
    assert (status, accepted["status"]) == (202, "pending")
    deadline = time.monotonic() + 30
    while (erasure := api(port, f"/api/v1/erasures/{accepted['id']}")[1])["status"] == "pending":
        assert time.monotonic() < deadline, "the erasure is still pending"
        time.sleep(0.2)
    events = len(range(0, EVENTS, 7))  # device-0's: every 7th
    counts = erasure["counts"]
    assert (counts["devices"], counts["events"], counts["deliveries"]) == (1, events, events), counts


def check_deliveries(received) -> None:
    delivery_ids = {request.headers["x-delivery-id"] for request, _ in received}
    assert len(delivery_ids) == EVENTS  # every postback once, none twice
    assert {request.query["event_id"][0] for request, _ in received} == {f"e2e-{n}" for n in range(EVENTS)}
    assert all(request.path == "/pb/purchase" and request.query["revenue"] == ["1.25"] for request, _ in received)
    lateness = sorted(request.at - accepted for request, accepted in received)
    assert lateness[-1] < 10, lateness  # real time: seconds at worst here, on a shared test machine


def test_real_time_postbacks_arrive_once_through_the_running_product(scratch_env, receiver):
    check_deliveries(run_product_and_send_events(scratch_env, receiver))


@pytest.mark.redis
def test_the_same_with_the_redis_broker(scratch_env, receiver, redis_url):
    scratch_env["REDIS_URL"] = redis_url
    check_deliveries(run_product_and_send_events(scratch_env, receiver))
