"""PostgreSQL stopped and started: the API answers 503 while it is down and writes nothing
half-way, and everything accepted before is delivered after, with nothing restarted by hand.

The drill runs its own PostgreSQL server (initdb into a temporary folder), so it may stop it;
it is skipped where the test cannot run one (not root, or no PostgreSQL binaries)."""

import os
import tempfile
import time
from pathlib import Path

import pytest

from tests.drills.conftest import report
from tests.drills.stand import DRILL_SETTINGS, Stand
from tests.product import OwnPostgres, Processes, import_config, manage, process_environment

pytestmark = pytest.mark.drill


@pytest.fixture
def own_postgres():
    # Not under pytest's tmp_path: the postgres user cannot enter root's private folder.
    server = OwnPostgres(Path(tempfile.mkdtemp(prefix="postbacks-drill-pg-")))
    if not server.available:
        if os.environ.get("CI") == "true":
            pytest.fail("the PostgreSQL drill needs root and the PostgreSQL binaries under CI=true")
        pytest.skip("cannot run a PostgreSQL server of the drill's own here")
    server.init()
    yield server
    server.remove()


def test_database_stopped_and_started(tmp_path, receiver, own_postgres):
    env = {**process_environment(tmp_path), "DATABASE_URL": own_postgres.url, **DRILL_SETTINGS}
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    manage(env, "migrate", "-v0")
    stand = Stand(env=env, processes=Processes(env, tmp_path), receiver=receiver)
    import_config(env, Stand.config_for(receiver, delay_seconds=30))
    try:
        stand.start_api()
        stand.start_workers()
        for number in range(20):  # due 30 s from now: still waiting in the database when it stops
            assert stand.send_event(f"before-{number}") == 202
        own_postgres.stop()
        stopped_at = time.monotonic()
        refused = [stand.send_event(f"during-{number}") for number in range(10)]
        assert set(refused) == {503}, refused
        status, health = stand.health()
        assert status == 503 and health["checks"]["database"].startswith("unreachable")
        time.sleep(3)
        own_postgres.start()
        down_for = time.monotonic() - stopped_at
        assert stand.send_event("after-0") == 202  # the API is back by itself
        stand.wait_all_arrived(timeout=120)
        stand.wait_all_delivered(timeout=60)
    finally:
        stand.processes.stop_all()
    arrived = stand.arrived_event_ids()
    assert not any(event_id.startswith("during-") for event_id in arrived)
    script = (
        "from events.models import Event; "
        "print(Event.objects.filter(event_id__startswith='during-').count(), Event.objects.count())"
    )
    during, total = map(int, manage(env, "shell", "-c", script).split()[-2:])
    assert (during, total) == (0, 21)  # nothing of a refused event was written
    report(
        "PostgreSQL stop/start", accepted=21, refused_while_down=10, delivered=len(arrived), down_s=f"{down_for:.1f}"
    )
