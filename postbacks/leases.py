"""How long a claim holds its deliveries: one rule for the claim (postbacks/sending.py), stall
detection (postbacks/selectors.py) and the start-up checks (postbacks/checks.py)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

HOST_SLOT_WAIT = 0.25  # seconds a request waits, in all, for its account's and its host's slots
HAND_OUT_LIMIT = 5.0  # seconds a task may spend handing its batch to threads; what is left is deferred
LEASE_MARGIN = timedelta(seconds=10)  # for the database writes after the last request
QUEUE_ALLOWANCE = timedelta(seconds=10)  # a claim taken up within this needs no second lease


def batch_longest() -> timedelta:
    """The longest a batch takes once its task has started: the task hands each delivery to a
    free sending thread within HAND_OUT_LIMIT (what it could not hand out by then goes back to
    the schedule), and each request then waits at most HOST_SLOT_WAIT for its slots and ends
    by its total deadline (POSTBACK_TOTAL_TIMEOUT, connecting included)."""
    return timedelta(seconds=HAND_OUT_LIMIT + HOST_SLOT_WAIT + settings.POSTBACK_TOTAL_TIMEOUT)


def lease_duration() -> timedelta:
    """Longer than a batch can take (batch_longest), with time to record the last attempts."""
    return batch_longest() + LEASE_MARGIN


def claim_lease() -> timedelta:
    """The lease a claim (or a renewal) gets: a batch's sending plus time to wait in the queue."""
    return lease_duration() + QUEUE_ALLOWANCE
