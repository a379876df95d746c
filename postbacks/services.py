"""Writes of the postbacks app."""

from __future__ import annotations

from events.models import Event


def deliveries_for_event(*, event: Event) -> list:
    """The deliveries an accepted event produces. Called inside the ingest transaction, so an
    event and its deliveries are stored together or not at all.

    The delivery engine (issue #4) fills this in; until then an event schedules nothing.
    """
    return []
