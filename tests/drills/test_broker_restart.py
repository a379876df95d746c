"""Redis (the broker) restarted while deliveries are due: delivery resumes by itself, with no
process restarted by hand, and events are accepted all the while."""

import os
import shutil
import socket
import subprocess
import time

import pytest

from tests.drills.conftest import report
from tests.drills.stand import Stand
from tests.product import free_port, scratch_environment, wait_until

pytestmark = pytest.mark.drill


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(port: int) -> subprocess.Popen:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: redis_answers(port), timeout=10, message="redis-server did not start")
    return process


@pytest.fixture
def redis_port():
    """A Redis server of the drill's own, which it may kill: never the machine's."""
    if not (shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server")):
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server must be installed under CI=true")
        pytest.skip("redis-server is not installed")
    return free_port()


def test_redis_restarted_while_deliveries_are_due(tmp_path, receiver, redis_port):
    redis = start_redis(redis_port)
    with scratch_environment(tmp_path) as env:
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        stand = Stand.create(env, tmp_path, receiver)
        try:
            stand.start_api()
            stand.start_workers()
            for number in range(10):
                assert stand.send_event(f"before-{number}") == 202
            stand.wait_all_arrived(timeout=60)

            redis.kill()
            redis.wait()
            for number in range(20):  # the API keeps accepting: the database holds the deliveries
                assert stand.send_event(f"during-{number}") == 202
            status, health = stand.health()
            assert status == 503 and health["checks"]["broker"].startswith("unreachable"), health
            time.sleep(3)
            arrived_while_down = len(stand.arrived_event_ids()) - 10
            redis = start_redis(redis_port)
            restarted_at = time.monotonic()

            stand.wait_all_arrived(timeout=90)
            recovered = time.monotonic() - restarted_at
            stand.wait_all_delivered(timeout=60)
            status, health = stand.health()
            assert status == 200 and health["backlog"] == 0, health
        finally:
            stand.processes.stop_all()
            redis.kill()
    assert len(set(stand.delivery_ids_seen())) == 30
    report(
        "Redis restart",
        events=30,
        delivered=30,
        sent_while_down=arrived_while_down,
        repeats_seen=len(stand.delivery_ids_seen()) - 30,
        recovered_s=f"{recovered:.1f}",
    )
