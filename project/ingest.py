"""Ingestion: the one place that knows both events and postbacks.

One database transaction stores the events, updates attribution and stores the deliveries
the events produce; if any part fails, nothing of it remains. When the database refuses a
batch (one row it cannot take), the items are stored one by one, and only the refused one is
lost: reported in its place.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import dataclass

from django.db import DataError, IntegrityError, transaction

from events.app_cache import app_profile
from events.models import App, Event
from events.services import EventInput, RecordOutcome, event_record_direct, events_record
from postbacks.models import Delivery
from postbacks.services import configurations_listen_to, deliveries_plan, deliveries_store
from project import clock, metrics

logger = logging.getLogger(__name__)

# Concurrent requests carrying the same new event_id or device identifier race to insert
# it; the loser's transaction is rolled back whole and run again, and then sees the winner's.
ATTEMPTS = 3


# What the database says when it will not take a row as it is (a value it cannot store, a
# constraint): the item is refused, never the request, nor the batch around it.
REFUSALS = (IntegrityError, DataError)


@dataclass(frozen=True)
class ItemRefused:
    """The database refused to store an item; nothing of it was stored."""

    error: str


def events_ingest(*, app: App, items: list[EventInput]) -> list[RecordOutcome | ItemRefused]:
    """Store events (in order) and their deliveries; one outcome per item. When the database
    refuses the batch's statements, the items are stored one by one, each all or nothing,
    and the ones it still refuses are reported in their place."""
    try:
        return _ingest_together(app=app, items=items)
    except REFUSALS as error:
        if len(items) == 1:
            return [_refused(app, items[0], error)]
        logger.warning(
            "app %s: the database refused a batch of %d events (%r); storing them one by one", app.pk, len(items), error
        )
    return [_ingest_alone(app=app, item=item) for item in items]


def _ingest_alone(*, app: App, item: EventInput) -> RecordOutcome | ItemRefused:
    try:
        return _ingest_together(app=app, items=[item])[0]
    except REFUSALS as error:
        return _refused(app, item, error)


def _refused(app: App, item: EventInput, error: Exception) -> ItemRefused:
    logger.warning("app %s: the database refused event %r: %r", app.pk, item.event_id, error)
    name = error.__class__.__name__
    return ItemRefused(f"The database refused to store this event ({name}); nothing of it was stored.")


def _ingest_together(*, app: App, items: list[EventInput]) -> list[RecordOutcome]:
    """All the items or none, in one transaction."""
    for attempt in range(ATTEMPTS):
        try:
            with transaction.atomic():
                # A lone event is usually new: skip the duplicate lookup and let the unique
                # constraint catch a repeat (IntegrityError), then look it up on the retry.
                check_known = attempt > 0 or len(items) > 1
                deliveries: list[Delivery] = []
                outcomes = events_record(
                    app=app,
                    items=items,
                    received_at=clock.now(),
                    check_known=check_known,
                    # Decided before the events are inserted, so each goes in with its count.
                    before_events_insert=lambda events, deliveries=deliveries: deliveries.extend(
                        deliveries_plan(app=app, events=events)
                    ),
                )
                created = [outcome.event for outcome in outcomes if outcome.created]
                transaction.on_commit(lambda created=created: _count_accepted(app, created))
                deliveries_store(deliveries=deliveries)
            return outcomes
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _count_accepted(app: App, events: list[Event]) -> None:
    for name, count in Counter(event.name for event in events).items():
        _accepted_counter(app.pk, name).inc(count)


@functools.lru_cache(maxsize=4096)
def _accepted_counter(app_pk: int, name: str):
    """The counter of one app and event name: finding it by its labels cost more than counting."""
    return metrics.EVENTS_ACCEPTED.labels(app=str(app_pk), event=name)


def event_ingest(*, app: App, data: EventInput) -> RecordOutcome | ItemRefused:
    if not configurations_listen_to(app=app, event_name=data.name):
        # Most events have a plain outcome that one statement can store.
        try:
            event = event_record_direct(
                app=app,
                item=data,
                received_at=clock.now(),
                may_reengage=app_profile(app).has_reengagement_trackers,
            )
        except REFUSALS:
            event = None  # events_ingest tries again and words the refusal
        if event is not None:
            transaction.on_commit(lambda: _count_accepted(app, [event]))
            return RecordOutcome(event=event, created=True)
    return events_ingest(app=app, items=[data])[0]
