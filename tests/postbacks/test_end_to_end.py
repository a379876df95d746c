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
    manage(env, "shell", "-c", STORE_OLD_HISTORY)
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
        wait_for_the_schedule_to_expire_old_history(env)
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


# What a day 200 days ago left (an install and a delivered purchase of one device, a click),
# and the worker's retention schedule made due: a cluster that has just started runs it itself.
STORE_OLD_HISTORY = """
from datetime import timedelta
from django_q.models import Schedule
from events.models import App
from events.services import EventInput, click_record
from partners.models import Partner
from postbacks.ingest import events_ingest
from postbacks.models import Delivery
from project import clock

app = App.objects.get(name="E2E")
old = clock.now() - timedelta(days=200)
with clock.frozen(old):
    network = Partner.objects.filter(kind=Partner.Kind.NETWORK).first()
    tracker = app.trackers.create(network=network, destination_url="https://play.example/")
    click_record(tracker=tracker, clicked_at=old, device_ids={"device_id": "old-device"}, click_id="", ip=None,
        user_agent="", parameters={})
    for number, name in enumerate(["install", "purchase"]):
        events_ingest(app=app, items=[EventInput(f"old-{number}", name, {"device_id": "old-device"}, occurred_at=old)])
assert Delivery.objects.filter(event__event_id="old-1").update(status="delivered", due_at=None, finished_at=old) == 1
assert app.events.filter(event_id__startswith="old-").count() == 2 and app.clicks.count() == 1
assert Schedule.objects.filter(name="retention").update(next_run=clock.now() - timedelta(minutes=1)) == 1
"""
OLD_HISTORY_LEFT = """
import json
from events.models import Click, Device, Event
from postbacks.models import Delivery
print(json.dumps([Event.objects.filter(event_id__startswith="old-").count(),
    Delivery.objects.filter(event__event_id__startswith="old-").count(),
    Device.objects.filter(identifiers__value="old-device").count(), Click.objects.count(),
    Event.objects.filter(event_id__startswith="e2e-").count()]))
"""


def old_history_left(env) -> list[int]:
    return json.loads(manage(env, "shell", "-c", OLD_HISTORY_LEFT).stdout.splitlines()[-1])


def wait_for_the_schedule_to_expire_old_history(env) -> None:
    """django-q2's scheduler looks at the schedules 30 s after the cluster starts, then each 30 s."""
    deadline = time.monotonic() + 60
    while (left := old_history_left(env))[:4] != [0, 0, 0, 0]:
        assert time.monotonic() < deadline, f"old history left (events, deliveries, devices, clicks): {left}"
        time.sleep(1)
    assert left[4] == EVENTS - len(range(0, EVENTS, 7))  # today's, but the erased device's, are all kept


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
