"""Prometheus metrics.

Counters and histograms are kept by each process (API workers, django-q2 workers) in
prometheus_client's multiprocess files under PROMETHEUS_MULTIPROC_DIR (set in settings, one
directory per machine) and summed when scraped. Each app defines its own metrics; gauges read
at scrape time (postbacks/metrics.py: the backlog) come in as collectors.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest, multiprocess


def exposition(*collectors) -> bytes:
    """The metrics in Prometheus' text format: every process of this machine, and `collectors`."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)
