"""django-q2 tasks: thin wrappers around the sending and alerting services."""

from datetime import datetime

from postbacks.alerts import alert_notify as _alert_notify
from postbacks.sending import STRAGGLER_WAIT, Claim, deliveries_send


def send_deliveries(ids: list[int], lease: str) -> None:
    deliveries_send(claim=Claim(ids=ids, lease=datetime.fromisoformat(lease)), wait_seconds=STRAGGLER_WAIT)


def alert_notify(alert_id: int) -> None:
    _alert_notify(alert_id=alert_id)
