"""Ingestion: the one place that knows both events and postbacks.

One database transaction stores the event, updates attribution and stores the deliveries
the event produces; if any part fails, nothing of the event remains.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from events.models import App, Event
from events.services import EventInput, event_record
from postbacks.services import deliveries_for_event
from project import clock

# Concurrent first events of one new device race to create its identifiers; the loser's
# transaction is rolled back whole and simply run again.
ATTEMPTS = 3


@dataclass(frozen=True)
class IngestResult:
    event: Event
    created: bool


def event_ingest(*, app: App, data: EventInput) -> IngestResult:
    for attempt in range(ATTEMPTS):
        existing = Event.objects.filter(app=app, event_id=data.event_id).first()
        if existing is not None:
            return IngestResult(event=existing, created=False)
        try:
            with transaction.atomic():
                event = event_record(app=app, data=data, received_at=clock.now())
                deliveries = deliveries_for_event(event=event)
                if deliveries:
                    event.postbacks_scheduled = len(deliveries)
                    event.save(update_fields=["postbacks_scheduled"])
            return IngestResult(event=event, created=True)
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
