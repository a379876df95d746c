"""Per-minute rollups of attempt outcomes (DeliveryMinute), written in the transaction that
records the attempts, and the one rule that names why an attempt failed.

The statistics and the dashboard read these rows, never the deliveries table: a minute of a
configuration holds a handful of rows however many deliveries it sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection

from postbacks.models import (
    DELAY_BUCKETS_S,
    RESPONSE_BUCKETS_MS,
    Attempt,
    DeliveryMinute,
    delay_bucket_fields,
    response_bucket_fields,
)
from project import clock

# Why an attempt did not deliver, as the statistics group failures.
CAUSES = {
    "dns": "DNS: host not found",
    "connect": "Connection failed",
    "timeout": "Timed out",
    "refused": "Destination refused (private address)",
    "redirect": "HTTP 3xx (redirect not followed)",
    "http_4xx": "HTTP 4xx (request refused)",
    "http_5xx": "HTTP 5xx (partner's server error)",
    "partner_error": "Partner's error in a 2xx reply",
    "other": "Other error",
}


def failure_cause(*, outcome: str, status: int | None, error: str) -> str:
    """The cause (a CAUSES key) of an attempt that did not deliver, or "" for one that did.
    Read from what the send path records: the response status, or the error that stopped the
    request (postbacks/http.py words them)."""
    if outcome == Attempt.Outcome.DELIVERED:
        return ""
    if status is not None:
        if 200 <= status < 300:
            return "partner_error"  # the template's reply rules found an error in the body
        return {3: "redirect", 4: "http_4xx", 5: "http_5xx"}.get(status // 100, "other")
    if error.startswith("Refused"):
        return "refused"
    if "Cannot resolve" in error or "Name or service not known" in error or "name resolution" in error.lower():
        return "dns"
    if error.startswith(("Timed out", "Not sent:")):
        return "timeout"
    if error.startswith("Connection failed") or "Cannot connect" in error:
        return "connect"
    return "other"


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def rollups_record(*, attempts: Iterable[Attempt]) -> None:
    """Add recorded attempts to their minutes' rollups: one INSERT … ON CONFLICT DO UPDATE that
    adds to the rows already there (PostgreSQL and SQLite ≥ 3.24 share the syntax). Call it in
    the transaction that records the attempts, so that a rolled-back batch counts nothing."""
    buckets = response_bucket_fields()
    delays = delay_bucket_fields()
    rows: dict[tuple, list[int]] = {}
    for attempt in attempts:
        delivery = attempt.delivery
        cause = failure_cause(outcome=attempt.outcome, status=attempt.response_status, error=attempt.error)
        key = (delivery.app_id, delivery.configuration_id, minute_of(attempt.started_at), attempt.outcome, cause)
        counts = rows.setdefault(key, [0] * (2 + len(buckets) + len(delays)))
        counts[0] += 1
        counts[1] += attempt.duration_ms
        counts[2 + bucket_index(attempt.duration_ms, RESPONSE_BUCKETS_MS)] += 1
        waited = _due_to_delivered_s(attempt)
        if waited is not None:
            counts[2 + len(buckets) + bucket_index(waited, DELAY_BUCKETS_S)] += 1
    if not rows:
        return
    quote = connection.ops.quote_name
    keys = ["app_id", "configuration_id", "minute", "outcome", "cause"]
    added = ["attempts", "duration_ms_sum", *buckets, *delays]
    columns = ", ".join(quote(name) for name in keys + added)
    placeholders = "(" + ", ".join(["%s"] * (len(keys) + len(added))) + ")"
    table = quote(DeliveryMinute._meta.db_table)
    sums = ", ".join(f"{quote(name)} = {table}.{quote(name)} + EXCLUDED.{quote(name)}" for name in added)
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT ({', '.join(quote(name) for name in ['configuration_id', 'minute', 'outcome', 'cause'])}) "
        f"DO UPDATE SET {sums}"
    )
    field = DeliveryMinute._meta.get_field("minute")
    parameters: list = []
    # Sorted, so that concurrent batches take the rows' locks in one order (no deadlock).
    for (app_id, configuration_id, minute, outcome, cause), counts in sorted(rows.items(), key=_sort_key):
        minute_value = field.get_db_prep_value(minute, connection)
        parameters += [app_id, configuration_id, minute_value, str(outcome), cause, *counts]
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)


def _sort_key(item: tuple) -> tuple:
    _app, configuration_id, minute, outcome, cause = item[0]
    return (configuration_id, minute, str(outcome), cause)


def bucket_index(value: float, bounds: tuple) -> int:
    for index, bound in enumerate(bounds):
        if value < bound:
            return index
    return len(bounds)


def _due_to_delivered_s(attempt: Attempt) -> float | None:
    """A delivered attempt's wait from its delivery's first due time (created, plus the
    configuration's delay) to the end of the attempt, in seconds; None for any other attempt."""
    delivery = attempt.delivery
    if attempt.outcome != Attempt.Outcome.DELIVERED or delivery.created_at is None:
        return None
    first_due = delivery.created_at + timedelta(seconds=delivery.configuration.delay_seconds)
    finished = attempt.started_at + timedelta(milliseconds=attempt.duration_ms)
    return max(0.0, (finished - first_due).total_seconds())


def rollups_purge(*, older_than: timedelta) -> int:
    """Delete rollup minutes older than now - older_than (purge_deliveries keeps them at least
    as long as the statistics' longest window). Returns the count."""
    return DeliveryMinute.objects.filter(minute__lt=clock.now() - older_than).delete()[0]
