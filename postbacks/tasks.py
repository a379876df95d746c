"""django-q2 tasks: thin wrappers around the sending service."""

from datetime import datetime

from postbacks.sending import STRAGGLER_WAIT, Claim, deliveries_send


def send_deliveries(ids: list[int], lease: str) -> None:
    deliveries_send(claim=Claim(ids=ids, lease=datetime.fromisoformat(lease)), wait_seconds=STRAGGLER_WAIT)
