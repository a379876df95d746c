"""Retention: what is older than its setting is deleted in short batches (docs/retention.md).

Each kind has its own age (the *_RETENTION_DAYS settings; project/settings.py refuses
combinations that would break a rule relying on stored rows):

- deliveries (with their attempts): finished ones created before DELIVERY_RETENTION_DAYS;
  scheduled or sending ones are never deleted;
- events: received before EVENT_RETENTION_DAYS, unless one of their deliveries is still
  scheduled or sending (a paused configuration's held deliveries keep their events);
- devices with no event received within DEVICE_RETENTION_DAYS, with their identifiers and
  whatever events remain: the end of that device's history (its next event starts a new
  device: an install is then a first install, attributed afresh). A device's install and
  latest reengagement are columns of the device, so deleting events and clicks never loses them;
- clicks: before CLICK_RETENTION_DAYS, never sooner than attribution may still read them (the
  longest lookback window in use plus EVENT_MAX_AGE_DAYS, since a backdated install looks
  back from its own time); a device's link to a deleted click is emptied, its snapshot of the
  attribution (tracker, network, campaign) stays;
- the statistics' per-minute rollups: DELIVERY_RETENTION_DAYS, never less than the
  statistics' longest window;
- event keys (what makes a replay a duplicate): EVENT_MAX_AGE_DAYS + 1 days;
- SessionBegin's period claims (one postback per period): EVENT_MAX_AGE_DAYS + 2 days.

On PostgreSQL, whole days of deliveries with their attempts, of events and of clicks go first
by dropping their partitions, when the same rules would delete every row of the day
(postbacks/partitions.py). The rest goes in batches: each batch is one short transaction
found through an index, so ingestion and delivery wait at most for one batch; a run stops
after its time budget and says where it stopped, and the scheduled task queues its
continuation (postbacks/tasks.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Max, Min, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from events.models import App, Click, Device, Event, EventKey
from postbacks import partitions
from postbacks.models import Delivery, DeliveryMinute, SessionPeriodClaim
from postbacks.selectors import event_of_delivery_on_its_day
from postbacks.statistics import WINDOWS
from project import clock

logger = logging.getLogger("postbacks.retention")

BATCH = 1000
UNFINISHED = (Delivery.Status.SCHEDULED, Delivery.Status.SENDING)
FINISHED = (Delivery.Status.DELIVERED, Delivery.Status.FAILED, Delivery.Status.SKIPPED)
KINDS = ("deliveries", "events", "devices", "clicks", "rollup minutes", "event keys", "session claims")


@dataclass
class RetentionRun:
    """What a run deleted (or, dry, would delete), by kind; `finished` is False when the time
    budget ran out first, and then `devices_after` is where the devices' scan goes on."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    finished: bool = True
    devices_after: int = 0
    click_days: int = 0
    event_names_filled: int = 0


def rollup_retention_days(*, delivery_days: int) -> int:
    """Rollups are kept as long as deliveries, and at least the statistics' longest window."""
    return max(delivery_days, max(WINDOWS.values()).days)


def click_retention_days() -> int:
    """CLICK_RETENTION_DAYS, raised (with a logged reason) to what attribution may still read:
    the longest lookback window of any app plus EVENT_MAX_AGE_DAYS."""
    longest = App.objects.aggregate(longest=Max("lookback_days"))["longest"] or 0
    needed = longest + settings.EVENT_MAX_AGE_DAYS
    if needed > settings.CLICK_RETENTION_DAYS:
        logger.warning(
            "clicks are kept %d days, not CLICK_RETENTION_DAYS=%d: an app's lookback window is %d days and "
            "events may be backdated by EVENT_MAX_AGE_DAYS=%d",
            needed,
            settings.CLICK_RETENTION_DAYS,
            longest,
            settings.EVENT_MAX_AGE_DAYS,
        )
        return needed
    return settings.CLICK_RETENTION_DAYS


def deliveries_expired(*, cutoff):
    """Deliveries retention deletes: finished ones created before the cut-off."""
    return Delivery.objects.filter(created_at__lt=cutoff, status__in=FINISHED)


def _expired_events(cutoff):
    unfinished = Delivery.objects.filter(event=OuterRef("pk"), status__in=UNFINISHED)
    return Event.objects.filter(received_at__lt=cutoff).exclude(Exists(unfinished))


def _inactive_devices(cutoff):
    # The index on (device, occurred_at) finds a device's events: one received inside the
    # retention happened at most EVENT_MAX_AGE_DAYS before (the API refuses older ones).
    recent = Event.objects.filter(
        device=OuterRef("pk"),
        occurred_at__gte=cutoff - timedelta(days=settings.EVENT_MAX_AGE_DAYS),
        received_at__gte=cutoff,
    )
    unfinished = Delivery.objects.filter(device=OuterRef("pk"), status__in=UNFINISHED)
    # A device is stored with its first event, in one transaction: none is new and eventless.
    return Device.objects.exclude(Exists(recent)).exclude(Exists(unfinished))


def _expired_clicks(cutoff):
    return Click.objects.filter(clicked_at__lt=cutoff)


def event_keys_kept_days() -> int:
    """An event's key (what makes a replay a duplicate) outlives the events' age limit by a
    day: a replay received later is refused for its age (its timestamp is the original's)."""
    return settings.EVENT_MAX_AGE_DAYS + 1


def session_claims_kept_days() -> int:
    """A claim of a 24-hour period is made at the earliest when the period starts; an event of
    that period may arrive until EVENT_MAX_AGE_DAYS after it ends (a day of margin on top)."""
    return settings.EVENT_MAX_AGE_DAYS + 2


def _id_span(rows: QuerySet) -> dict | None:
    """Conditions on an id column finding `rows`: between their lowest and highest ids (an
    index range), and among them. None when there are no rows."""
    first, last = rows.aggregate(first=Min("pk"), last=Max("pk")).values()
    return None if first is None else {"gte": first, "lte": last, "in": rows.values("pk")}


def _on(column: str, span: dict) -> dict:
    return {f"{column}__{lookup}": value for lookup, value in span.items()}


def _events_unlink(events: QuerySet) -> None:
    """Before a day of events is dropped: the deliveries of those that go (finished ones: an
    event with a delivery still to send stays) and their keys."""
    if span := _id_span(events):
        # By their created_at (Delivery.created_at), through delivery_created_idx, not by asking
        # every day of deliveries for the ids (a day of the 10-million-event bench: 20.5 s).
        received = events.aggregate(first=Min("received_at"), last=Max("received_at"))
        of_the_day = Delivery.objects.filter(created_at__gte=received["first"], created_at__lte=received["last"])
        expired_delete(of_the_day.filter(**_on("event_id", span)), order="pk")
        EventKey.objects.filter(**_on("pk", span)).delete()


def _clicks_unlink(clicks: QuerySet) -> None:
    """Before a day of clicks is dropped: the devices' links to them are emptied, as deleting does."""
    if span := _id_span(clicks):
        for link in ("install_click", "reengagement_click"):
            Device.objects.filter(**_on(f"{link}_id", span)).update(**{link: None})


@dataclass(frozen=True)
class Expiring:
    """One kind's expired rows, and how they go: by their partitioned days first when
    `partitioned` is given (postbacks/partitions.py), then in batches in the order of `order`."""

    kind: str
    expired: QuerySet
    order: str
    cutoff: datetime
    partitioned: partitions.PartitionedTable | None = None
    dependents: Callable[[QuerySet], None] = lambda gone: None


def deliveries_expiring(*, cutoff: datetime) -> Expiring:
    # Their attempts go with their days.
    return Expiring("deliveries", deliveries_expired(cutoff=cutoff), "created_at", cutoff, partitions.DELIVERIES)


def expiring(*, now: datetime, click_days: int) -> list[Expiring]:
    """What retention deletes at `now`, kind by kind, in the order it deletes them: deliveries
    before events and events before devices (each then deletes fewer rows by cascade)."""
    events = now - timedelta(days=settings.EVENT_RETENTION_DAYS)
    clicks = now - timedelta(days=click_days)
    minutes = now - timedelta(days=rollup_retention_days(delivery_days=settings.DELIVERY_RETENTION_DAYS))
    keys = now - timedelta(days=event_keys_kept_days())
    claims = now - timedelta(days=session_claims_kept_days())
    return [
        deliveries_expiring(cutoff=now - timedelta(days=settings.DELIVERY_RETENTION_DAYS)),
        Expiring("events", _expired_events(events), "received_at", events, partitions.EVENTS, _events_unlink),
        Expiring("clicks", _expired_clicks(clicks), "clicked_at", clicks, partitions.CLICKS, _clicks_unlink),
        Expiring("rollup minutes", DeliveryMinute.objects.filter(minute__lt=minutes), "minute", minutes),
        # In the order of their events' ids, as they came (EventKey.Meta says why).
        Expiring("event keys", EventKey.objects.filter(received_at__lt=keys), "pk", keys),
        Expiring("session claims", SessionPeriodClaim.objects.filter(claimed_at__lt=claims), "pk", claims),
    ]


def retention_run(
    *, dry_run: bool = False, budget: timedelta | None = None, batch: int = BATCH, devices_after: int = 0
) -> RetentionRun:
    """Delete (dry_run: count) what each kind keeps no longer, oldest first, `batch` rows a
    transaction, until done or `budget` is spent. The devices' scan starts after `devices_after`."""
    now = clock.now()
    run = RetentionRun(devices_after=devices_after, click_days=click_retention_days())
    kinds = expiring(now=now, click_days=run.click_days)
    devices = _inactive_devices(now - timedelta(days=settings.DEVICE_RETENTION_DAYS))
    if dry_run:
        run.counts = {each.kind: each.expired.count() for each in kinds}
        run.counts["devices"] = devices.filter(pk__gt=devices_after).count()
        return run
    deadline = None if budget is None else time.monotonic() + budget.total_seconds()

    def out_of_time() -> bool:
        if deadline is not None and time.monotonic() >= deadline:
            run.finished = False
        return not run.finished

    # On PostgreSQL the coming days' partitions are made first.
    partitions.partitions_ensure()
    for each in kinds:
        if each.kind == "clicks":  # devices after events, before clicks
            _devices_delete(run, devices, batch=batch, out_of_time=out_of_time)
        run.counts[each.kind] += expiring_delete(each, batch=batch, out_of_time=out_of_time)
    run.event_names_filled = event_names_fill(batch=batch, out_of_time=out_of_time)
    if run.finished:
        run.devices_after = 0
    logger.info(
        "retention deleted %s%s%s",
        ", ".join(f"{count} {kind}" for kind, count in run.counts.items()),
        f"; filled the event name of {run.event_names_filled} deliveries" if run.event_names_filled else "",
        "" if run.finished else f" and stopped after {budget}; the rest follows",
    )
    return run


def event_names_fill(*, batch: int = BATCH, out_of_time=lambda: False) -> int:
    """Store their event's name on deliveries made before migration postbacks 0015, newest
    first, `batch` a transaction (the migration left them empty: one UPDATE of 10 million rows
    ran for more than 17 minutes); '' where the event is gone. Once none is left, the delivery
    log's event-name filter reads the stored names alone (selectors.deliveries_of_event_name).
    The count of deliveries filled."""
    name = event_of_delivery_on_its_day().values("name")[:1]
    unnamed = Delivery.objects.filter(event_name__isnull=True)
    # delivery_event_name_idx read backwards, from where the last batch ended: only unnamed
    # entries are read. By the primary key, each batch read past every delivery filled before
    # it (3 million rows, 2 s, a third of the way through 10 million).
    newest_first = (F("event_name").desc(nulls_first=True), "-pk")
    total, below = 0, None
    while not out_of_time():
        rows = unnamed if below is None else unnamed.filter(pk__lt=below)
        ids = list(rows.order_by(*newest_first).values_list("pk", flat=True)[:batch])
        if not ids:
            break
        total += unnamed.filter(pk__in=ids).update(event_name=Coalesce(Subquery(name), Value("")))
        below = ids[-1]
    return total


def expiring_delete(expiring: Expiring, *, batch: int = BATCH, out_of_time=lambda: False) -> int:
    """Delete one kind's expired rows: on PostgreSQL its whole days first, by dropping their
    partitions, then the rest in batches (expired_delete); the count of the kind's rows deleted."""
    dropped = 0
    if expiring.partitioned is not None:
        dropped = partitions.days_drop(
            expiring.partitioned,
            expired=expiring.expired,
            before=expiring.cutoff.astimezone(UTC).date(),
            dependents=expiring.dependents,
            out_of_time=out_of_time,
        )
    return dropped + expired_delete(expiring.expired, order=expiring.order, batch=batch, out_of_time=out_of_time)


def expired_delete(expired: QuerySet, *, order: str, batch: int = BATCH, out_of_time=lambda: False) -> int:
    """Delete the rows `expired` selects (with what cascades from them), oldest first by
    `order`, `batch` rows a transaction, until none is left or out_of_time(); the count deleted."""
    total = 0
    while not out_of_time():
        ids = list(expired.order_by(order).values_list("pk", flat=True)[:batch])
        if not ids:
            break
        with transaction.atomic():
            # The rule again, not the ids alone: a delivery may have been resent meanwhile.
            # Only the ids are read back: Django loads the rows it deletes, and a wide row
            # (a delivery's request) costs more to load than to delete.
            deleted = expired.filter(pk__in=ids).only("pk").delete()[1]
        total += deleted.get(expired.model._meta.label, 0)
    return total


def _devices_delete(run: RetentionRun, inactive, *, batch: int, out_of_time) -> None:
    """Inactive devices in the order of their ids, from `run.devices_after` on: no index
    leads to inactivity, so the scan remembers where it stopped."""
    while not out_of_time():
        ids = list(inactive.filter(pk__gt=run.devices_after).order_by("pk").values_list("pk", flat=True)[:batch])
        if not ids:
            return
        with transaction.atomic():
            # Checked again and locked, as erasure locks them: an event arriving now waits for
            # this transaction, and then ingestion retries it as a new device.
            locked = list(inactive.filter(pk__in=ids).select_for_update(of=("self",)).values_list("pk", flat=True))
            deleted = Device.objects.filter(pk__in=locked).only("pk").delete()[1]
        run.counts["devices"] += deleted.get("events.Device", 0)
        run.devices_after = ids[-1]
