"""Reads about deliveries: which are due, the backlog, whether the workers stalled (selectors
read; services and sending write; the statistics read rollups: postbacks/statistics.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Min, Q, QuerySet

from postbacks.leases import claim_lease
from postbacks.models import Attempt, Delivery
from project import clock


def due_filter(now: datetime) -> Q:
    """Deliveries due for an attempt: scheduled and due, or claimed by a worker whose lease ran out."""
    return Q(status=Delivery.Status.SCHEDULED, due_at__lte=now) | Q(
        status=Delivery.Status.SENDING, lease_expires_at__lt=now
    )


def waiting_filter(now: datetime) -> Q:
    """Deliveries that should have been sent by `now` and are not finished, claimed or not.
    A claimed row keeps the due time it was claimed at, so a claim that no worker takes up
    (workers stopped, the dispatcher still claiming) goes on ageing instead of vanishing."""
    return Q(status__in=[Delivery.Status.SCHEDULED, Delivery.Status.SENDING], due_at__lte=now)


def backlog(*, deliveries: QuerySet | None = None) -> tuple[int, float]:
    """Deliveries (all, or of `deliveries`) due and not finished, and the age in seconds of the
    oldest (0 when none)."""
    now = clock.now()
    due = (Delivery.objects.all() if deliveries is None else deliveries).filter(waiting_filter(now))
    oldest = due.aggregate(oldest=Min("due_at"))["oldest"]
    return due.count(), (now - oldest).total_seconds() if oldest else 0.0


def workers_stalled(*, after: timedelta) -> bool:
    """True when deliveries have been due, or claimed, for longer than `after` and no attempt
    at all was recorded for as long: the cluster is not taking work (a busy one records
    attempts all the time, an idle one has nothing due). Seen with django-q2 after a worker was
    SIGKILLed: the cluster took tasks from the queue and ran none. Claimed rows count from
    their claim, not from the end of their lease: the dispatcher claims them again as soon as
    a lease runs out, so "due for `after`" alone may never come true."""
    now = clock.now()
    claimed_long_ago = Q(status=Delivery.Status.SENDING, lease_expires_at__lt=now - after + claim_lease())
    waiting = Delivery.objects.filter(due_filter(now - after) | claimed_long_ago).exists()
    if not waiting:
        return False
    last = Attempt.objects.order_by("-pk").values_list("started_at", flat=True).first()
    return last is None or last <= now - after
