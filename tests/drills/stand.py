"""A test stand for the fault drills: the product's real processes (gunicorn API, django-q2
cluster, dispatcher) on a scratch database, a real receiver, and helpers to send events and
read the outcome back from the database."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.product import Processes, free_port, http_ok, import_config, manage, wait_until
from tests.receiver import Receiver

API_KEY = "pbk_drill_key_0123456789abcdefghij"

# A short deadline keeps a killed worker's lease short (5 s to hand a batch out, 0.25 s slot
# wait, the 3 s deadline, plus 10 s margin and 10 s queue allowance: 28 s), so a drill
# recovers in seconds, not minutes.
DRILL_SETTINGS = {
    "POSTBACK_BATCH_SIZE": "20",
    "POSTBACK_CONNECT_TIMEOUT": "1",
    "POSTBACK_TOTAL_TIMEOUT": "3",
    "Q_WORKERS": "2",
    "LOG_FORMAT": "json",
    "WORKER_STALL_SECONDS": "10",
    "LOG_LEVEL": "INFO",
}


@dataclass
class Stand:
    env: dict[str, str]
    processes: Processes
    receiver: Receiver
    api_port: int = 0
    accepted: list[str] = field(default_factory=list)
    accepted_at: dict[str, float] = field(default_factory=dict)  # event id -> time.monotonic() of the 202

    @classmethod
    def create(
        cls,
        env: dict[str, str],
        log_dir: Path,
        receiver: Receiver,
        *,
        retry_attempts: int = 5,
        other_destinations: tuple[str, ...] = (),
    ) -> Stand:
        """One app, one postback to `receiver`/pb, and one more to each of `other_destinations`."""
        env = {**env, **DRILL_SETTINGS}
        manage(env, "migrate", "-v0")
        import_config(
            env,
            cls.config_for(receiver, retry_attempts=retry_attempts, other_destinations=other_destinations),
        )
        return cls(env=env, processes=Processes(env, log_dir), receiver=receiver)

    @staticmethod
    def config_for(
        receiver: Receiver, *, retry_attempts: int = 5, other_destinations: tuple[str, ...] = (), delay_seconds: int = 0
    ) -> dict:
        others = [
            {"event": "purchase", "kind": "custom", "destination_url": url, "macros": ["event_id"], "retry_attempts": 1}
            for url in other_destinations
        ]
        postback = {
            "event": "purchase",
            "kind": "custom",
            "destination_url": receiver.url + "/pb",
            "macros": ["event_id"],
            "retry_attempts": retry_attempts,
            "delay_seconds": delay_seconds,
        }
        return {
            "apps": [
                {
                    "name": "Drill",
                    "account": "Drill",
                    "platform": "android",
                    "package_name": "com.drill.app",
                    "api_key": API_KEY,
                    "custom_events": ["purchase"],
                    "postbacks": [postback, *others],
                }
            ]
        }

    # --- roles ---------------------------------------------------------------------------

    def start_api(self) -> None:
        self.api_port = free_port()
        address = f"127.0.0.1:{self.api_port}"
        self.processes.start("api", "-m", "gunicorn", "project.wsgi", "-w", "2", "-b", address)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{self.api_port}/api/schema/"), timeout=30, message="API up")

    def start_workers(self, suffix: str = "", **env: str) -> None:
        """A cluster (under run_workers) and a dispatcher; returns once the cluster runs."""
        self.processes.start(f"cluster{suffix}", "manage.py", "run_workers", env=env)
        self.processes.start(f"dispatcher{suffix}", "manage.py", "dispatch_postbacks", env=env)
        wait_until(
            lambda: "running" in self.processes.output(f"cluster{suffix}"),
            timeout=30,
            message="the cluster did not start\n" + self.outputs(),
        )

    # --- traffic ---------------------------------------------------------------------------

    def send_event(self, event_id: str) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/api/v1/events",
            data=json.dumps({"event_id": event_id, "event": "purchase", "device": {"device_id": event_id}}).encode(),
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            return 0
        if status == 202:
            self.accepted.append(event_id)
            self.accepted_at[event_id] = time.monotonic()
        return status

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/healthz", timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    # --- outcome ---------------------------------------------------------------------------

    def arrived_event_ids(self) -> set[str]:
        return {request.query["event_id"][0] for request in list(self.receiver.received) if request.path == "/pb"}

    def lateness(self) -> list[float]:
        """Seconds from each 202 to the postback's first arrival, sorted."""
        first: dict[str, float] = {}
        for request in list(self.receiver.received):
            if request.path == "/pb":
                first.setdefault(request.query["event_id"][0], request.at)
        return sorted(first[event_id] - at for event_id, at in self.accepted_at.items() if event_id in first)

    def delivery_ids_seen(self) -> list[str]:
        return [request.headers["x-delivery-id"] for request in list(self.receiver.received) if request.path == "/pb"]

    def wait_all_arrived(self, timeout: float) -> None:
        wait_until(
            lambda: self.arrived_event_ids() >= set(self.accepted),
            timeout=timeout,
            message=lambda: (
                f"{len(set(self.accepted) - self.arrived_event_ids())} of {len(self.accepted)} "
                f"not arrived\n{self.outputs()}"
            ),
        )

    def wait_all_delivered(self, timeout: float) -> None:
        """Every accepted event's delivery recorded as delivered (arrival alone is not enough:
        a worker killed after sending never wrote it down, and sends again after its lease)."""
        expected = {"delivered": len(self.accepted)}
        wait_until(
            lambda: self.deliveries() == expected,
            timeout=timeout,
            interval=1,
            message=lambda: f"deliveries {self.deliveries()}\n{self.outputs()}",
        )

    def deliveries(self) -> dict[str, int]:
        """Deliveries by status, read from the scratch database by a fresh process."""
        script = (
            "import json; from django.db.models import Count; from postbacks.models import Delivery;"
            "print(json.dumps(dict(Delivery.objects.values_list('status').annotate(n=Count('id')))))"
        )
        return json.loads(manage(self.env, "shell", "-c", script).strip().splitlines()[-1])

    def outputs(self) -> str:
        names = sorted(path.stem for path in self.processes.log_dir.glob("*.log"))
        return "\n".join(f"--- {name}\n{self.processes.output(name)[-2000:]}" for name in names)


def redis_for_drills() -> bool:
    """Drills use the production broker when the run has one."""
    return bool(os.environ.get("REDIS_URL"))
