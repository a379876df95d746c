"""Reads about deliveries: which are due, the backlog, whether the workers stalled (selectors
read; services and sending write; the statistics read rollups: postbacks/statistics.py)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.db.models import Exists, Min, OuterRef, Q, QuerySet

from events.models import Event
from events.selectors import SEARCH_MATCHES, devices_identified_by
from postbacks.leases import claim_lease
from postbacks.models import AlertState, Attempt, Delivery, PostbackConfiguration
from postbacks.rendering import destination_host
from project import clock


def paused_configurations() -> QuerySet:
    """Ids of the configurations paused after an alert or by hand (their deliveries are held)."""
    return AlertState.objects.filter(paused=True).values("configuration_id")


def _ready_filter(now: datetime) -> Q:
    # A claimed row keeps the due time it was claimed at, so both kinds are due by due_at: said
    # first, it bounds the scan of delivery_due_idx at now. Without it the scan read on through
    # every delivery waiting for a later retry (100,000 of them: 524 ms per claim).
    return Q(due_at__lte=now) & (
        Q(status=Delivery.Status.SCHEDULED) | Q(status=Delivery.Status.SENDING, lease_expires_at__lt=now)
    )


def due_filter(now: datetime) -> Q:
    """Deliveries due for an attempt: scheduled and due, or claimed by a worker whose lease ran
    out; unless their configuration is paused (then they are held: left as they are, unclaimed)."""
    return _ready_filter(now) & ~Q(configuration_id__in=paused_configurations())


def held_filter(now: datetime) -> Q:
    """Deliveries that would be due but for their configuration's pause."""
    return _ready_filter(now) & Q(configuration_id__in=paused_configurations())


def waiting_filter(now: datetime) -> Q:
    """Deliveries that should have been sent by `now` and are not finished, claimed or not.
    A claimed row keeps the due time it was claimed at, so a claim that no worker takes up
    (workers stalled, the dispatcher still claiming) goes on ageing instead of vanishing.
    Held deliveries do not count: a pause is someone's decision, not a stall."""
    return Q(status__in=[Delivery.Status.SCHEDULED, Delivery.Status.SENDING], due_at__lte=now) & ~Q(
        configuration_id__in=paused_configurations()
    )


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
    claimed_long_ago = Q(status=Delivery.Status.SENDING, lease_expires_at__lt=now - after + claim_lease()) & ~Q(
        configuration_id__in=paused_configurations()
    )
    waiting = Delivery.objects.filter(due_filter(now - after) | claimed_long_ago).exists()
    if not waiting:
        return False
    last = Attempt.objects.order_by("-pk").values_list("started_at", flat=True).first()
    return last is None or last <= now - after


def postback_duplicates(*, configuration: PostbackConfiguration) -> QuerySet:
    """Other postbacks that send the same thing: same app, event, kind, destination (URL or partner
    configuration) and method."""
    return PostbackConfiguration.objects.filter(
        app_id=configuration.app_id,
        event=configuration.event,
        kind=configuration.kind,
        partner_configuration_id=configuration.partner_configuration_id,
        destination_url=configuration.destination_url,
        method=configuration.method,
    ).exclude(pk=configuration.pk)


def event_of_delivery_on_its_day() -> QuerySet:
    """For a subquery: the event of the outer delivery, looked for on its day only (a
    delivery's created_at is its event's received_at, Delivery.created_at), so that PostgreSQL
    reads one day's partition of events, not every day's."""
    return Event.objects.filter(pk=OuterRef("event_id"), received_at=OuterRef("created_at"))


def deliveries_of_event_name(*, deliveries: QuerySet, name: str) -> QuerySet:
    """The deliveries of events named `name`, newest first through delivery_event_name_idx.
    Deliveries made before migration postbacks 0015 have no name stored (None) until
    retention stores it (retention.event_names_fill): theirs is read from their event."""
    named = Q(event_name=name)
    if Delivery.objects.filter(event_name__isnull=True).exists():
        named |= Q(event_name__isnull=True) & Exists(event_of_delivery_on_its_day().filter(name=name))
    return deliveries.filter(named)


_HEX_PREFIX = re.compile(r"[0-9a-f]{4,32}")


def deliveries_matching(*, deliveries: QuerySet, apps: QuerySet, term: str) -> QuerySet:
    """The deliveries a support search finds: by delivery id or its start (the short id the log
    shows), event id, device id, or destination host. Each through an index: a delivery id
    range, and the events, devices and configurations of `apps` looked up first."""
    term = term.strip()
    if not term:
        return deliveries
    # Ids fetched first, so that each part is an index condition on the log (an OR of subqueries
    # would have the database test every delivery row against them).
    events = Event.objects.filter(app__in=apps, event_id=term).values_list("pk", flat=True)
    found = Q(event_id__in=list(events[:SEARCH_MATCHES])) | Q(device_id__in=devices_identified_by(apps=apps, term=term))
    digits = term.replace("-", "").lower()
    if _HEX_PREFIX.fullmatch(digits):
        # UUIDs sort as their hex digits do, on PostgreSQL and SQLite alike.
        low, high = uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))
        found |= Q(delivery_id__gte=low, delivery_id__lte=high)
    try:
        host = (urlsplit(term).hostname if "//" in term else term.lower()) or ""
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        host = ""
    if "." in host or host == "localhost":
        configurations = PostbackConfiguration.objects.filter(app__in=apps).select_related(
            "partner_configuration__partner"
        )
        matching = [
            configuration.pk
            for configuration in configurations.prefetch_related("partner_configuration__partner__templates")
            if destination_host(configuration) == host
        ]
        found |= Q(configuration_id__in=matching)
    return deliveries.filter(found)


@dataclass
class Waiting:
    delivery: Delivery
    why: str


UNDELIVERED_LIMIT = 500


def undelivered(*, deliveries: QuerySet, limit: int = UNDELIVERED_LIMIT) -> tuple[list[Waiting], int]:
    """The deliveries (of `deliveries`) not finished now, next due first, each with why it waits;
    and how many there are in all."""
    now = clock.now()
    waiting = deliveries.filter(status__in=[Delivery.Status.SCHEDULED, Delivery.Status.SENDING])
    rows = waiting.select_related("configuration__app", "event").order_by("due_at", "pk")[:limit]
    paused = {state.pk: state for state in AlertState.objects.filter(paused=True)}
    return [Waiting(delivery=row, why=_why_waiting(row, paused.get(row.configuration_id), now)) for row in rows], (
        waiting.count()
    )


def _why_waiting(delivery: Delivery, pause: AlertState | None, now: datetime) -> str:
    due = f"{delivery.due_at:%Y-%m-%d %H:%M:%S} UTC" if delivery.due_at else "?"
    if delivery.status == Delivery.Status.SENDING:
        if delivery.lease_expires_at and delivery.lease_expires_at >= now:
            return "Being sent now."
        why = "Claimed by a worker that did not finish: to be claimed again."
    elif delivery.attempts:
        why = (
            f"Retrying: attempt {delivery.attempts + 1} of {delivery.max_attempts} due at {due}; "
            f"last error: {delivery.last_error or delivery.last_status_code or '?'}"
        )
    elif delivery.due_at and delivery.due_at > now:
        why = f"Delayed: due at {due} (the configuration's delivery delay)."
    elif delivery.deferrals:
        why = f"Deferred {delivery.deferrals} times (its destination was busy); due since {due}."
    else:
        why = f"Due since {due}: waiting for a worker."
    if pause is not None:
        since = f"{pause.paused_at:%Y-%m-%d %H:%M} UTC" if pause.paused_at else "?"
        return f"Held: its configuration is paused since {since} ({pause.pause_reason or 'no reason given'}). {why}"
    return why
