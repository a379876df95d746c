"""A dead destination (connection refused) and one that hangs, beside a healthy one: the
healthy postbacks stay on time."""

import time

import pytest

from tests.drills.conftest import report
from tests.drills.stand import Stand
from tests.product import free_port, scratch_environment
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.drill

EVENTS = 60
RATE = 10  # events/s


def test_healthy_postbacks_stay_on_time_beside_dead_and_hanging_destinations(tmp_path, receiver):
    refused = f"http://127.0.0.1:{free_port()}/dead"  # nothing listens there
    with Receiver() as hanging, scratch_environment(tmp_path) as env:
        hanging.default = Reply(delay=10)  # longer than the read timeout: every attempt times out
        stand = Stand.create(env, tmp_path, receiver, other_destinations=(refused, hanging.url + "/hang"))
        try:
            stand.start_api()
            stand.start_workers()
            started = time.monotonic()
            for number in range(EVENTS):
                assert stand.send_event(f"healthy-{number}") == 202
                time.sleep(max(0.0, started + (number + 1) / RATE - time.monotonic()))
            stand.wait_all_arrived(timeout=30)
        finally:
            stand.processes.stop_all()
    lateness = stand.lateness()
    p99 = lateness[int(len(lateness) * 0.99) - 1]
    assert len(lateness) == EVENTS
    assert p99 < 2.0, lateness  # the precision target: p99 within 2 s of the due time
    assert hanging.received  # the hanging destination was being tried all along
    report(
        "dead destination",
        events=EVENTS,
        healthy_delivered=len(lateness),
        healthy_p50_s=f"{lateness[len(lateness) // 2]:.2f}",
        healthy_p99_s=f"{p99:.2f}",
    )
