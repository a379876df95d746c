"""Prometheus metrics.

Counters and histograms are kept by each process (API workers, django-q2 workers) in
prometheus_client's multiprocess files under PROMETHEUS_MULTIPROC_DIR (set in settings, one
directory per machine) and summed when scraped; the backlog is read from the database at
scrape time, so it is the whole system's, seen from any machine.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

DELIVERIES_CREATED = Counter(
    "postbacks_deliveries_created_total",
    "Deliveries created by accepted events: scheduled, or skipped with a reason.",
    ["partner", "status"],
)
ATTEMPTS = Counter(
    "postbacks_delivery_attempts_total",
    "Postback attempts by outcome: delivered, retry (scheduled again) or failed (given up).",
    ["partner", "outcome"],
)
ATTEMPT_DURATION = Histogram(
    "postbacks_attempt_duration_seconds",
    "Time of one attempt, from sending the request to the end of the response.",
    ["partner"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
DELIVERY_LATENCY = Histogram(
    "postbacks_delivery_latency_seconds",
    "From the time a delivery was due to its successful attempt's end.",
    ["partner"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600),
)


class _BacklogCollector:
    def collect(self):
        from postbacks.sending import backlog

        count, age = backlog()
        yield GaugeMetricFamily("postbacks_backlog_deliveries", "Deliveries due now and not yet sent.", value=count)
        yield GaugeMetricFamily(
            "postbacks_backlog_oldest_due_seconds",
            "Age of the oldest due delivery: grows when workers stall.",
            value=age,
        )


def exposition() -> bytes:
    """The metrics in Prometheus' text format: every process of this machine, and the backlog."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(_BacklogCollector())
    return generate_latest(registry)
