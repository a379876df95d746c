"""The events app's Prometheus counter: events accepted by the API (project/metrics.py exposes it)."""

from __future__ import annotations

import functools
from collections import Counter

from prometheus_client import Counter as PrometheusCounter

from events.models import Event

EVENTS_ACCEPTED = PrometheusCounter(
    "postbacks_events_accepted_total", "Events accepted by the API (duplicates not counted).", ["app", "event"]
)


def events_count_accepted(*, app_id: int, events: list[Event]) -> None:
    for name, count in Counter(event.name for event in events).items():
        _accepted_counter(app_id, name).inc(count)


@functools.lru_cache(maxsize=4096)
def _accepted_counter(app_id: int, name: str):
    """The counter of one app and event name, found once (finding it by its labels costs more than counting)."""
    return EVENTS_ACCEPTED.labels(app=str(app_id), event=name)
