"""django-q2 tasks: thin wrappers around the sending and erasure services."""

import uuid
from datetime import datetime

from postbacks.erasure import erasure_process
from postbacks.sending import STRAGGLER_WAIT, Claim, deliveries_send


def send_deliveries(ids: list[int], lease: str) -> None:
    deliveries_send(claim=Claim(ids=ids, lease=datetime.fromisoformat(lease)), wait_seconds=STRAGGLER_WAIT)


def process_erasure(erasure_id: str) -> None:
    erasure_process(erasure_id=uuid.UUID(erasure_id))
