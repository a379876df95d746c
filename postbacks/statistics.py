"""The figures of the statistics page and the admin dashboard, read from the per-minute rollups
(DeliveryMinute, postbacks/rollups.py) and from the few unfinished deliveries (a partial
index holds them), never by scanning the deliveries table.

What is counted, honestly: delivered and failed are deliveries that ended in the window;
retried are attempts that failed and were scheduled again; "retrying" are deliveries whose
last attempt failed and that wait for their next one now. The success rate counts those as
not delivered. Response-time percentiles are estimated from the rollups' histogram buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Trunc

from postbacks.models import (
    DELAY_BUCKETS_S,
    RESPONSE_BUCKETS_MS,
    Attempt,
    Delivery,
    DeliveryMinute,
    PostbackConfiguration,
    delay_bucket_fields,
    response_bucket_fields,
)
from postbacks.rollups import CAUSES
from postbacks.selectors import backlog
from project import clock

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
# The chart's step for each window: a few dozen to a few hundred points.
STEPS = {"1h": "minute", "24h": "hour", "7d": "hour", "30d": "day"}
STEP_LENGTH = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
FAILING_NOW = timedelta(minutes=15)  # "failing now": more failed than delivered attempts in this time

DELIVERED, RETRY, FAILED = Attempt.Outcome.DELIVERED, Attempt.Outcome.RETRY, Attempt.Outcome.FAILED
UNFINISHED = [Delivery.Status.SCHEDULED, Delivery.Status.SENDING]


@dataclass
class Tally:
    """Attempt outcomes and response times of some rollup rows, and the deliveries retrying now."""

    delivered: int = 0
    failed: int = 0
    retried: int = 0
    retrying: int = 0
    duration_ms_sum: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * len(response_bucket_fields()))
    delay_buckets: list[int] = field(default_factory=lambda: [0] * len(delay_bucket_fields()))

    def add(self, row: dict) -> None:
        count = row["attempts"] or 0
        if row["outcome"] == DELIVERED:
            self.delivered += count
        elif row["outcome"] == FAILED:
            self.failed += count
        else:
            self.retried += count
        self.duration_ms_sum += row["duration_ms_sum"] or 0
        for index, name in enumerate(response_bucket_fields()):
            self.buckets[index] += row[name] or 0
        for index, name in enumerate(delay_bucket_fields()):
            self.delay_buckets[index] += row[name] or 0

    @property
    def attempts(self) -> int:
        return self.delivered + self.failed + self.retried

    @property
    def success_rate(self) -> float | None:
        """Delivered among the deliveries that ended or are retrying, in percent."""
        tried = self.delivered + self.failed + self.retrying
        return round(100 * self.delivered / tried, 1) if tried else None

    def percentile_ms(self, share: float) -> int | None:
        return histogram_percentile(self.buckets, share)

    @property
    def p50_ms(self) -> int | None:
        return self.percentile_ms(0.5)

    @property
    def p95_ms(self) -> int | None:
        return self.percentile_ms(0.95)

    @property
    def delay_p50_s(self) -> int | None:
        return histogram_percentile(self.delay_buckets, 0.5, bounds=DELAY_BUCKETS_S)

    @property
    def delay_p95_s(self) -> int | None:
        return histogram_percentile(self.delay_buckets, 0.95, bounds=DELAY_BUCKETS_S)


def histogram_percentile(buckets: list[int], share: float, *, bounds: tuple = RESPONSE_BUCKETS_MS) -> int | None:
    """The value (response time, or wait) below which `share` of the counted fell, interpolated
    within its bucket of `bounds` (the last, open bucket answers its lower bound)."""
    total = sum(buckets)
    if not total:
        return None
    target = share * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= target:
            if index == len(bounds):
                return bounds[-1]
            lower = bounds[index - 1] if index else 0
            return round(lower + (bounds[index] - lower) * (target - seen) / count)
        seen += count
    return bounds[-1]


def configuration_name(configuration: PostbackConfiguration) -> str:
    """What a person calls a configuration: its title, or its event and where it goes (the
    partner, or the custom destination's host), and its app."""
    if configuration.title:
        return configuration.title
    partner = configuration.partner
    target = partner.name if partner else (urlsplit(configuration.destination_url).hostname or "custom")
    return f"{configuration.event} → {target} ({configuration.app.name})"


@dataclass
class Row:
    """A configuration's or a partner's figures."""

    key: int | str
    name: str
    tally: Tally
    partner: str = ""
    event: str = ""
    top_cause: str = ""


@dataclass
class DeliveryStats:
    since: datetime
    step: str
    total: Tally
    skipped: int
    backlog: int
    oldest_due_age_s: float
    failures_by_cause: list[tuple[str, str, int, int]]  # cause, label, failed, retried (attempts)
    series: list[dict]  # per step: at, delivered, failed, retried, p50_ms, p95_ms
    per_configuration: list[Row]
    per_partner: list[Row]
    top_causes: dict[int, str] = field(default_factory=dict)  # configuration -> its most frequent cause

    @property
    def by_status(self) -> dict[str, int]:
        """Deliveries by what became of them (zeros left out)."""
        counts = {
            "delivered": self.total.delivered,
            "failed": self.total.failed,
            "retrying": self.total.retrying,
            "skipped": self.skipped,
        }
        return {status: count for status, count in counts.items() if count}

    @property
    def success_rate(self) -> float | None:
        return self.total.success_rate

    @property
    def response_p50_ms(self) -> int | None:
        return self.total.p50_ms

    @property
    def response_p95_ms(self) -> int | None:
        return self.total.p95_ms

    @property
    def delay_p50_s(self) -> int | None:
        return self.total.delay_p50_s

    @property
    def delay_p95_s(self) -> int | None:
        return self.total.delay_p95_s


def _sums() -> dict:
    fields = ["attempts", "duration_ms_sum", *response_bucket_fields(), *delay_bucket_fields()]
    return {name: Sum(name) for name in fields}


def delivery_stats(*, configurations: QuerySet, since: datetime, step: str = "hour") -> DeliveryStats:
    """Figures since `since` of the postback configurations given (those the user may see, or
    one partner's or one configuration of them). Every read of the deliveries table names
    the configurations, so an index narrows it (the partial index of unfinished deliveries,
    or configuration, status, created_at): none scans the table."""
    now = clock.now()
    ids = list(configurations.values_list("pk", flat=True))
    deliveries = Delivery.objects.filter(configuration_id__in=ids)
    window = DeliveryMinute.objects.filter(configuration_id__in=ids, minute__gte=minute_floor(since))
    rows = list(window.order_by().values("configuration_id", "outcome", "cause").annotate(**_sums()))
    retrying = dict(
        deliveries.filter(status__in=UNFINISHED, attempts__gt=0)
        .order_by()
        .values_list("configuration_id")
        .annotate(n=Count("pk"))
    )
    skipped = deliveries.filter(status=Delivery.Status.SKIPPED, created_at__gte=since).count()
    named = (
        PostbackConfiguration.objects.select_related("app", "partner_configuration__partner")
        .filter(pk__in={row["configuration_id"] for row in rows} | set(retrying))
        .in_bulk()
    )

    total = Tally(retrying=sum(retrying.values()))
    per_configuration: dict[int, Row] = {}
    per_partner: dict[str, Row] = {}
    causes: dict[str, list[int]] = {}
    by_configuration_cause: dict[int, dict[str, int]] = {}
    for configuration_id, count in retrying.items():
        _row_of(per_configuration, per_partner, named[configuration_id], count)
    for row in rows:
        total.add(row)
        for target in _row_of(per_configuration, per_partner, named[row["configuration_id"]], 0):
            target.tally.add(row)
        if row["outcome"] != DELIVERED:
            cause = row["cause"] or "other"
            counted = causes.setdefault(cause, [0, 0])
            counted[0 if row["outcome"] == FAILED else 1] += row["attempts"]
            own = by_configuration_cause.setdefault(row["configuration_id"], {})
            own[cause] = own.get(cause, 0) + row["attempts"]
    failures_by_cause = sorted(
        ((cause, CAUSES.get(cause, cause), failed, retried) for cause, (failed, retried) in causes.items()),
        key=lambda item: -(item[2] + item[3]),
    )
    waiting, oldest_due_age_s = backlog(deliveries=deliveries)
    return DeliveryStats(
        since=since,
        step=step,
        total=total,
        skipped=skipped,
        backlog=waiting,
        oldest_due_age_s=oldest_due_age_s,
        failures_by_cause=failures_by_cause,
        series=_series(window, since=since, now=now, step=step),
        per_configuration=sorted(
            per_configuration.values(), key=lambda row: -(row.tally.attempts + row.tally.retrying)
        ),
        per_partner=sorted(per_partner.values(), key=lambda row: -(row.tally.attempts + row.tally.retrying)),
        top_causes={
            configuration_id: CAUSES.get(top := max(counts, key=counts.get), top)
            for configuration_id, counts in by_configuration_cause.items()
        },
    )


def _row_of(per_configuration: dict, per_partner: dict, configuration: PostbackConfiguration, retrying: int):
    partner = configuration.partner
    partner_name = partner.name if partner else "Custom postbacks"
    by_configuration = per_configuration.get(configuration.pk)
    if by_configuration is None:
        by_configuration = per_configuration[configuration.pk] = Row(
            key=configuration.pk,
            name=configuration_name(configuration),
            tally=Tally(),
            partner=partner_name,
            event=configuration.event,
        )
    by_partner = per_partner.setdefault(
        partner_name, Row(key=partner.pk if partner else "", name=partner_name, tally=Tally())
    )
    by_configuration.tally.retrying += retrying
    by_partner.tally.retrying += retrying
    return by_configuration, by_partner


def minute_floor(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _step_floor(moment: datetime, step: str) -> datetime:
    moment = minute_floor(moment)
    if step in ("hour", "day"):
        moment = moment.replace(minute=0)
    if step == "day":
        moment = moment.replace(hour=0)
    return moment


def _series(window: QuerySet, *, since: datetime, now: datetime, step: str) -> list[dict]:
    """Delivered, failed and retried attempts and response-time percentiles per step, every
    step of the window present (zeros where nothing happened), for the charts."""
    rows = (
        window.order_by()
        .values(at=Trunc("minute", step))
        .annotate(
            delivered=Sum("attempts", filter=Q(outcome=DELIVERED)),
            failed=Sum("attempts", filter=Q(outcome=FAILED)),
            retried=Sum("attempts", filter=Q(outcome=RETRY)),
            **{name: Sum(name) for name in response_bucket_fields()},
        )
    )
    found = {_step_floor(row["at"], step): row for row in rows}
    series = []
    at, last = _step_floor(since, step), _step_floor(now, step)
    while at <= last:
        row = found.get(at, {})
        buckets = [row.get(name) or 0 for name in response_bucket_fields()]
        series.append(
            {
                "at": at,
                "delivered": row.get("delivered") or 0,
                "failed": row.get("failed") or 0,
                "retried": row.get("retried") or 0,
                "p50_ms": histogram_percentile(buckets, 0.5),
                "p95_ms": histogram_percentile(buckets, 0.95),
            }
        )
        at += STEP_LENGTH[step]
    return series


def configurations_failing_now(*, configurations: QuerySet) -> list[Row]:
    """Of the configurations given, those whose attempts of the last FAILING_NOW mostly failed
    (or that have deliveries retrying and delivered nothing in that time), worst first."""
    recent = delivery_stats(configurations=configurations, since=clock.now() - FAILING_NOW, step="minute")
    failing = []
    for row in recent.per_configuration:
        tally = row.tally
        not_delivered = tally.failed + tally.retried
        if not_delivered > tally.delivered or (tally.retrying and not tally.delivered):
            row.top_cause = recent.top_causes.get(row.key, "")
            failing.append(row)
    return sorted(failing, key=lambda row: -(row.tally.failed + row.tally.retried + row.tally.retrying))
