"""Ingestion: the one place that knows both events and postbacks.

One database transaction attributes the events, plans their deliveries, inserts the events
and stores the deliveries; if any part fails, nothing of it remains. When the database
refuses a batch (one row it cannot take), the items are stored one by one, and only the
refused one is lost: reported in its place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import DataError, IntegrityError, transaction

from events.metrics import events_count_accepted
from events.models import App, Event
from events.services import EventInput, RecordOutcome, event_record_direct, events_attribute, events_insert
from postbacks.services import configurations_listen_to, deliveries_plan, deliveries_store
from project import clock

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
    if not items:
        return []
    if len(items) == 1:
        event = _record_direct(app=app, item=items[0])
        if event is not None:
            return [RecordOutcome(event=event, created=True)]
    try:
        return _ingest_together(app=app, items=items)
    except REFUSALS as error:
        if len(items) == 1:
            return [_refused(app, items[0], error)]
        logger.warning(
            "app %s: the database refused a batch of %d events (%r); storing them one by one", app.pk, len(items), error
        )
    return [_ingest_alone(app=app, item=item) for item in items]


def _record_direct(*, app: App, item: EventInput) -> Event | None:
    """A lone event no configuration listens to and no attribution rule concerns, in one
    statement; None otherwise (and then _ingest_together stores it, or words its refusal)."""
    if configurations_listen_to(app=app, event_name=item.name):
        return None
    try:
        event = event_record_direct(app=app, item=item, received_at=clock.now())
    except REFUSALS:
        return None
    if event is not None:
        transaction.on_commit(lambda: events_count_accepted(app_id=app.pk, events=[event]))
    return event


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
                attributed = events_attribute(app=app, items=items, received_at=clock.now(), check_known=check_known)
                # Planned before the events are inserted, so each goes in with its count.
                deliveries = deliveries_plan(app=app, events=attributed.new_events)
                events_insert(events=attributed.new_events)
                deliveries_store(deliveries=deliveries)
                transaction.on_commit(
                    lambda created=attributed.new_events: events_count_accepted(app_id=app.pk, events=created)
                )
            return attributed.outcomes
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
