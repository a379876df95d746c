"""Workers killed with SIGKILL in the middle of sending: nothing is lost, and with the delivery
id a receiver sees every postback once."""

import os
import signal
import time
from collections import Counter

import pytest

from tests.drills.conftest import report
from tests.product import pid_holding_connection, wait_until
from tests.receiver import Reply

pytestmark = pytest.mark.drill

EVENTS = 30


def start_and_catch_a_worker_mid_send(stand) -> int:
    """Start everything, send the events, and return the pid of a process that is sending now
    (the first postbacks are answered only after 2 s, so the worker is inside the request)."""
    stand.receiver.replies = [Reply(delay=2.0) for _ in range(6)]
    stand.start_api()
    stand.start_workers()
    for number in range(EVENTS):
        assert stand.send_event(f"kill-{number}") == 202
    wait_until(lambda: stand.receiver.received, timeout=60, message="no postback arrived\n" + stand.outputs())
    sender = stand.receiver.received[0]
    pid = pid_holding_connection(local_port=sender.peer_port, remote_port=stand.receiver.server.server_address[1])
    assert pid is not None
    return pid


def check_once_each(stand) -> int:
    seen = Counter(stand.delivery_ids_seen())
    assert len(seen) == EVENTS  # every postback arrived, each with its own delivery id
    return sum(count - 1 for count in seen.values())  # requests a receiver deduplicates by id


def test_one_worker_process_killed_mid_send(stand):
    pid = start_and_catch_a_worker_mid_send(stand)
    assert pid != stand.processes.running["cluster"].pid  # a worker, not the cluster's leader
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    stand.wait_all_arrived(timeout=90)
    stand.wait_all_delivered(timeout=90)
    recovered = time.monotonic() - killed_at
    repeats = check_once_each(stand)
    report("one worker SIGKILL", events=EVENTS, delivered=EVENTS, repeats_seen=repeats, recovered_s=f"{recovered:.1f}")


def test_whole_cluster_killed_mid_send_and_started_again(stand):
    start_and_catch_a_worker_mid_send(stand)
    stand.processes.kill("cluster")  # every process of the cluster, at once
    killed_at = time.monotonic()
    stand.processes.start("cluster-2", "manage.py", "qcluster")
    stand.wait_all_arrived(timeout=90)
    stand.wait_all_delivered(timeout=90)
    recovered = time.monotonic() - killed_at
    repeats = check_once_each(stand)
    report("cluster SIGKILL", events=EVENTS, delivered=EVENTS, repeats_seen=repeats, recovered_s=f"{recovered:.1f}")
