"""Two separate django-q2 clusters (as two machines would run them) share one PostgreSQL and
one Redis while events stream in: every postback arrives, none twice, and both do the work."""

import json
import time
from collections import Counter

import pytest

from tests.drills.conftest import report
from tests.drills.stand import Stand
from tests.product import scratch_environment

pytestmark = [pytest.mark.drill, pytest.mark.redis]

EVENTS = 150
RATE = 30  # events/s


def deliveries_logged(output: str) -> int:
    """Successful attempts in a cluster's JSON log (a retried connection error is not a share)."""
    count = 0
    for line in output.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            count += entry.get("message") == "postback attempt" and entry.get("outcome") == "delivered"
    return count


def test_two_clusters_share_the_work_and_send_each_postback_once(tmp_path, receiver, redis_url):
    with scratch_environment(tmp_path, redis=True) as env:
        stand = Stand.create(env, tmp_path, receiver)
        try:
            stand.start_api()
            stand.start_workers("-a")  # "machine" A: a cluster and a dispatcher
            stand.start_workers("-b")  # "machine" B: the same, sharing the queue by cluster name
            started = time.monotonic()
            for number in range(EVENTS):
                assert stand.send_event(f"scale-{number}") == 202
                time.sleep(max(0.0, started + (number + 1) / RATE - time.monotonic()))
            stand.wait_all_arrived(timeout=60)
            stand.wait_all_delivered(timeout=30)
            time.sleep(1)  # a duplicate would arrive now
        finally:
            stand.processes.stop_all()
    seen = Counter(stand.delivery_ids_seen())
    assert len(seen) == EVENTS and max(seen.values()) == 1  # each once
    by_cluster = {name: deliveries_logged(stand.processes.output(name)) for name in ("cluster-a", "cluster-b")}
    assert sum(by_cluster.values()) == EVENTS
    assert min(by_cluster.values()) >= EVENTS // 10, by_cluster  # both clusters took a real share
    lateness = stand.lateness()
    report(
        "two clusters",
        events=EVENTS,
        delivered=len(seen),
        duplicates=0,
        share=f"{by_cluster['cluster-a']}/{by_cluster['cluster-b']}",
        p99_s=f"{lateness[int(len(lateness) * 0.99) - 1]:.2f}",
    )
