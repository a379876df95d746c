"""django-q2 tasks: thin wrappers around the sending service."""

from postbacks.sending import deliveries_send


def send_deliveries(ids: list[int]) -> None:
    deliveries_send(ids=ids)
