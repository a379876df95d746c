"""django-q2 tasks: thin wrappers around the sending, erasure, alerting and retention services."""

import uuid
from datetime import datetime, timedelta

from django_q.tasks import async_task

from postbacks.alerts import alert_notify as _alert_notify
from postbacks.erasure import erasure_process
from postbacks.retention import retention_run
from postbacks.sending import STRAGGLER_WAIT, Claim, deliveries_send


def send_deliveries(ids: list[int], lease: str) -> None:
    deliveries_send(claim=Claim(ids=ids, lease=datetime.fromisoformat(lease)), wait_seconds=STRAGGLER_WAIT)


def process_erasure(erasure_id: str) -> None:
    erasure_process(erasure_id=uuid.UUID(erasure_id))


def alert_notify(alert_id: int) -> None:
    _alert_notify(alert_id=alert_id)


# Below django-q2's task timeout (60 s, project/settings.py Q_CLUSTER): a long retention goes on
# in a new task rather than be killed midway.
RETENTION_TASK_BUDGET = timedelta(seconds=40)


def run_retention(devices_after: int = 0) -> None:
    """The daily schedule's task (postbacks/schedules.py): delete what is kept no longer, and
    queue the rest for another task when the budget runs out."""
    run = retention_run(budget=RETENTION_TASK_BUDGET, devices_after=devices_after)
    if not run.finished:
        async_task("postbacks.tasks.run_retention", run.devices_after)
