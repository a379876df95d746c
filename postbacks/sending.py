"""Claiming due deliveries, sending them, recording each attempt, and scheduling retries.

Retry schedule (docs/delivery.md): retry n waits RETRY_SCHEDULE[n-1] seconds ±20 % jitter.
A Retry-After header is honoured between once and twice that wait; a 429 waits at least 60 s.
Timeouts, connection errors, 408, 429 and 5xx are retried; any other status (3xx, 4xx)
and a refused destination fail at once. A certified partner's template may say otherwise
(its reply rules: partners/templating.py, reply_verdict).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from django import db
from django.conf import settings
from django.db import connection, transaction

from partners.templating import reply_verdict
from postbacks import alerts, http, leases, metrics
from postbacks.models import Attempt, Delivery, PostbackConfiguration
from postbacks.rendering import reply_rules_of
from postbacks.rollups import rollups_record
from postbacks.selectors import due_filter
from postbacks.signing import signed_headers
from project import clock
from project.bulk import rows_insert, rows_update_held

logger = logging.getLogger("postbacks.delivery")

RETRY_SCHEDULE = (30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400)
JITTER = 0.2
MIN_WAIT_AFTER_429 = 60
HOST_BUSY_DEFER = timedelta(seconds=2)  # a fast host (or account) at its in-flight limit, or no free thread
SLOW_HOST_DEFER = timedelta(seconds=5)  # a slow one: doubled at each deferral of the delivery
SLOW_HOST_DEFER_MAX = timedelta(seconds=60)
THREAD_WAIT = 0.25  # seconds a task waits for a free sending thread before it defers the rest of its batch
STRAGGLER_WAIT = 0.25  # a request running this long is left to record itself; the task moves on
MASK = "••••"
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key"}


@dataclass(frozen=True)
class Verdict:
    outcome: str  # an Attempt.Outcome value
    message: str


def verdict_for(exchange: http.Exchange, *, configuration: PostbackConfiguration | None = None) -> Verdict:
    """What an exchange means: read by the reply rules of the configuration's partner template
    (partners.templating.reply_verdict; a custom postback or none: by its status alone)."""
    if exchange.refused:
        return Verdict(Attempt.Outcome.FAILED, exchange.error)
    if exchange.status is None:
        return Verdict(Attempt.Outcome.RETRY, exchange.error)
    if 300 <= exchange.status < 400:
        location = exchange.header("Location")
        return Verdict(Attempt.Outcome.FAILED, f"HTTP {exchange.status}: redirect to {location or '?'} not followed")
    rules = reply_rules_of(configuration) if configuration is not None else None
    verdict = reply_verdict(rules=rules, status=exchange.status, body=exchange.body)
    return Verdict(Attempt.Outcome(verdict.outcome), verdict.message)


def retry_delay(
    *, retry_number: int, status: int | None = None, retry_after: str | None = None, rng: random.Random | None = None
) -> timedelta:
    """Wait before retry `retry_number` (1 = the first retry)."""
    rng = rng or random
    base = RETRY_SCHEDULE[min(retry_number, len(RETRY_SCHEDULE)) - 1]
    wait = base * (1 + rng.uniform(-JITTER, JITTER))
    asked = _retry_after_seconds(retry_after)
    if asked is not None:
        wait = min(max(asked, wait), 2 * wait)
    if status == 429:
        wait = max(wait, MIN_WAIT_AFTER_429)
    return timedelta(seconds=wait)


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - clock.now()).total_seconds())


# --- claiming ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """Deliveries taken for sending. `lease` (the lease_expires_at written) identifies the claim:
    once another worker has taken the rows over, it no longer matches and they are not sent."""

    ids: list[int]
    lease: datetime

    def batches(self, size: int) -> list[Claim]:
        return [Claim(ids=self.ids[start : start + size], lease=self.lease) for start in range(0, len(self.ids), size)]


def deliveries_claim(*, limit: int) -> Claim:
    """Take up to `limit` due deliveries (and any whose lease ran out) for sending."""
    now = clock.now()
    lease = now + leases.claim_lease()
    with transaction.atomic():
        candidates = Delivery.objects.filter(due_filter(now)).order_by("due_at")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        ids = list(candidates.values_list("pk", flat=True)[:limit])
        if ids:
            Delivery.objects.filter(pk__in=ids).update(status=Delivery.Status.SENDING, lease_expires_at=lease)
    return Claim(ids=ids, lease=lease)


def _claim_renew(claim: Claim) -> list[Delivery]:
    """The claimed deliveries this worker still holds, with a lease that outlasts the sending.
    A claim that waited in the queue past its lease may have been taken over (and sent) by
    another worker: those rows are left alone, so nothing is sent twice at once."""
    held_rows = Delivery.objects.filter(
        pk__in=claim.ids, status=Delivery.Status.SENDING, lease_expires_at=claim.lease
    ).order_by("pk")
    if claim.lease - clock.now() >= leases.lease_duration():
        # Taken up promptly (the usual case): nobody can take the rows over before the lease
        # runs out, and it outlasts the sending, so a plain read is enough.
        return list(held_rows)
    with transaction.atomic():
        held = list(held_rows.select_for_update())
        if held:
            lease = clock.now() + leases.claim_lease()
            Delivery.objects.filter(pk__in=[delivery.pk for delivery in held]).update(lease_expires_at=lease)
            for delivery in held:
                delivery.lease_expires_at = lease
    return held


# --- sending ----------------------------------------------------------------------------


def deliveries_send(*, claim: Claim, wait_seconds: float | None = None) -> dict[str, int]:
    """Send claimed deliveries concurrently and record every attempt. Returns outcome counts
    of the attempts finished within `wait_seconds` (None: wait for all).

    A slow destination or account must not hold up the others, so:
    - the task hands each delivery to a free sending thread, waiting at most THREAD_WAIT for
      one; when every thread stays busy (slow requests hold them all) it puts the rest of the
      batch back on the schedule rather than waiting for slow requests;
    - a request waits at most HOST_SLOT_WAIT for a slot of its account and of its host (fast
      ones free them in milliseconds, slow ones are not waited for); if either is still
      full, the delivery goes back to the schedule ("deferred", no attempt spent; see
      deferral_wait). One account holds at most POSTBACK_MAX_IN_FLIGHT_PER_ACCOUNT threads
      of a process, so the others always have some;
    - the task waits for its requests except those running for `wait_seconds` already; those
      record themselves, from their thread, when they finish (by their total deadline),
      while the worker takes its next task.
    The writes of what finished in time are batched: one UPDATE for the deliveries (on SQLite
    one per group of deliveries that end the same way) and one INSERT for the attempts."""
    deliveries = _claim_renew(claim)
    if not deliveries:
        return {}
    # A batch holds few configurations: load each once rather than join it to every row, with
    # their partners' templates (reply rules, verdict_for) and fields (secrets to mask).
    configurations = (
        PostbackConfiguration.objects.select_related("app", "partner_configuration__partner")
        .prefetch_related("partner_configuration__partner__templates", "partner_configuration__partner__fields")
        .in_bulk({delivery.configuration_id for delivery in deliveries})
    )
    for delivery in deliveries:
        delivery.configuration = configurations[delivery.configuration_id]
    secrets = {configuration.pk: secret_values_of(configuration) for configuration in configurations.values()}

    started_at: dict[int, float] = {}  # delivery pk -> when its request began (time.monotonic)
    pool, free_threads = _send_pool()

    def exchange(delivery: Delivery) -> _Exchanged | _Deferred:
        try:
            started_at[delivery.pk] = time.monotonic()
            headers = _headers_for(delivery)
            started = clock.now()
            result = http.send(
                method=delivery.method,
                url=delivery.url,
                headers=headers,
                body=delivery.body,
                account=str(delivery.configuration.app.account_id),
                slot_wait=leases.HOST_SLOT_WAIT,
            )
            if isinstance(result, http.Busy):
                wait = deferral_wait(deferrals=delivery.deferrals, host_slow=result.slow, host_pace=result.pace)
                return _Deferred(delivery, wait=wait)
            return _Exchanged(delivery, headers, started, result, secrets[delivery.configuration_id])
        finally:
            free_threads.release()

    futures = {}
    deferred: list[_Deferred] = []
    hand_out_until = time.monotonic() + leases.HAND_OUT_LIMIT
    for delivery in deliveries:
        if deferred or not free_threads.acquire(timeout=max(0.0, min(THREAD_WAIT, hand_out_until - time.monotonic()))):
            # Every thread is taken by requests that do not end soon: waiting would idle this
            # worker behind them while other deliveries are due.
            deferred.append(_Deferred(delivery, wait=HOST_BUSY_DEFER))
            continue
        futures[pool.submit(exchange, delivery)] = delivery.pk
    finished, running = _wait_for_all_but_slow(futures, started_at, slow_after=wait_seconds)
    results = [future.result() for future in futures if future in finished]
    # One "now" for the batch, so that like outcomes share one UPDATE.
    now = clock.now()
    outcomes = [result.outcome(now=now) for result in results if isinstance(result, _Exchanged)]
    deferred += [result for result in results if isinstance(result, _Deferred)]
    recorded = _outcomes_save(outcomes)
    _deliveries_defer(deferred)
    for future in running:
        future.add_done_callback(_straggler_save)
    counts: dict[str, int] = {}
    for outcome in recorded:
        counts[outcome.attempt.outcome] = counts.get(outcome.attempt.outcome, 0) + 1
        _attempt_report(outcome)
    if len(recorded) < len(outcomes):
        counts["claim_lost"] = len(outcomes) - len(recorded)
    if deferred:
        counts["deferred"] = len(deferred)
    if running:
        counts["still_sending"] = len(running)
    return counts


def _wait_for_all_but_slow(futures: dict, started_at: dict[int, float], *, slow_after: float | None):
    """Wait for every request except those that have been running for `slow_after` seconds
    (None: wait for all). A request still queued for a thread is not slow: it is waited for,
    so that a busy pool does not turn whole batches into one-by-one writes."""
    if slow_after is None:
        return wait(futures)
    pending = set(futures)
    finished: set = set()
    while pending:
        done, pending = wait(pending, timeout=0.05)
        finished |= done
        now = time.monotonic()
        if pending and all(
            futures[future] in started_at and now - started_at[futures[future]] >= slow_after for future in pending
        ):
            break
    return finished, pending


def _straggler_save(future) -> None:
    """Record a request that outlived its task, from the thread that sent it."""
    try:
        result = future.result()
        if isinstance(result, _Deferred):
            _deliveries_defer([result])
        else:
            for outcome in _outcomes_save([result.outcome(now=clock.now())]):
                _attempt_report(outcome)
    except Exception:
        # Not recorded (the database is away): the lease runs out and the delivery is sent
        # again (same delivery id).
        logger.exception("recording a postback attempt failed")
    finally:
        db.connections.close_all()  # this thread's: stragglers are rare, a held connection is not


def deferral_wait(*, deferrals: int, host_slow: bool, host_pace: float) -> timedelta:
    """How long a delivery whose host had no free slot goes back to the schedule.
    A fast host frees a slot in milliseconds: try again in 2 s. A slow one's backlog can only
    drain as fast as the host answers; putting every waiting delivery back every 2 s would
    spend the workers on claiming and deferring it. So each deferral of the same delivery doubles
    its wait, from 5 s or the host's pace, to at most 60 s."""
    if not host_slow:
        return HOST_BUSY_DEFER
    wait = max(SLOW_HOST_DEFER * 2 ** min(deferrals, 10), timedelta(seconds=host_pace))
    return min(wait, SLOW_HOST_DEFER_MAX)


@dataclass(frozen=True)
class _Deferred:
    """A delivery put back without a request: its host had no free slot."""

    delivery: Delivery
    wait: timedelta


def _deliveries_defer(deferred: list[_Deferred]) -> None:
    now = clock.now()
    back = {"status": Delivery.Status.SCHEDULED, "lease_expires_at": None}
    rows_update_held(
        Delivery,
        [
            (
                item.delivery.pk,
                _held(item.delivery),
                {**back, "due_at": now + item.wait, "deferrals": item.delivery.deferrals + 1},
            )
            for item in deferred
        ],
    )


_pool: tuple[tuple[int, int], ThreadPoolExecutor, threading.BoundedSemaphore] | None = None


def _send_pool() -> tuple[ThreadPoolExecutor, threading.BoundedSemaphore]:
    """One long-lived pool of POSTBACK_SEND_THREADS per process (threads do not survive
    django-q2's fork; starting them for every batch is dear), and its
    free threads: a task takes one before it hands a delivery over, so nothing waits in the
    pool's queue behind slow requests."""
    global _pool
    key = (os.getpid(), settings.POSTBACK_SEND_THREADS)
    if _pool is None or _pool[0] != key:
        if _pool is not None and _pool[0][0] == key[0]:
            _pool[1].shutdown(wait=False)  # the setting changed (tests): its threads finish and go
        threads = settings.POSTBACK_SEND_THREADS
        _pool = (
            key,
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="postback-send"),
            threading.BoundedSemaphore(threads),
        )
    return _pool[1], _pool[2]


def _headers_for(delivery: Delivery) -> dict[str, str]:
    return signed_headers(
        headers=delivery.headers,
        delivery_id=str(delivery.delivery_id),
        secret=delivery.configuration.signing_secret,
        body=delivery.body,
    )


@dataclass
class _Outcome:
    delivery: Delivery
    attempt: Attempt
    changes: dict  # what the delivery row becomes


@dataclass
class _Exchanged:
    """A request made, its outcome not yet decided."""

    delivery: Delivery
    headers: dict[str, str]
    started: datetime
    exchange: http.Exchange
    secrets: list[str]

    def outcome(self, *, now: datetime) -> _Outcome:
        delivery, exchange, secrets = self.delivery, self.exchange, self.secrets
        verdict = verdict_for(exchange, configuration=delivery.configuration)
        number = delivery.attempts + 1
        outcome, message = verdict.outcome, verdict.message
        if outcome == Attempt.Outcome.RETRY and number >= delivery.max_attempts:
            outcome = Attempt.Outcome.FAILED
            message = f"{message}; gave up after {number} attempt{'s' if number > 1 else ''}"
        attempt = Attempt(
            delivery=delivery,
            number=number,
            started_at=self.started,
            duration_ms=exchange.duration_ms,
            method=delivery.method,
            url=mask(delivery.url, secrets),
            captured_url=mask(exchange.captured_to, secrets),
            request_headers=masked_headers(self.headers, secrets),
            request_body=mask(delivery.body, secrets),
            response_status=exchange.status,
            response_headers=exchange.headers,
            response_body=exchange.body,
            error=mask(message, secrets)[:500],
            outcome=outcome,
        )
        changes: dict = {
            "attempts": number,
            "last_status_code": exchange.status,
            "last_error": attempt.error,
            "lease_expires_at": None,
        }
        if outcome == Attempt.Outcome.DELIVERED:
            changes.update(status=Delivery.Status.DELIVERED, finished_at=now, due_at=None)
        elif outcome == Attempt.Outcome.RETRY:
            wait = retry_delay(retry_number=number, status=exchange.status, retry_after=exchange.header("Retry-After"))
            changes.update(status=Delivery.Status.SCHEDULED, due_at=now + wait, finished_at=None)
        else:
            changes.update(status=Delivery.Status.FAILED, finished_at=now, due_at=None)
        return _Outcome(delivery=delivery, attempt=attempt, changes=changes)


def _outcomes_save(outcomes: list[_Outcome]) -> list[_Outcome]:
    """Record what the deliveries become and their attempts, and return the outcomes recorded.
    An outcome is recorded only under the claim its request was sent under: the deliveries'
    UPDATE, conditioned on the lease, comes first, and only the rows it changed get their
    attempt, in the same transaction. A request that outlived its lease, whose delivery was
    claimed again (and perhaps attempted, under the same attempt number), is logged and
    dropped: the new owner's record stands."""
    if not outcomes:
        return []
    with transaction.atomic():
        held = rows_update_held(
            Delivery, [(outcome.delivery.pk, _held(outcome.delivery), outcome.changes) for outcome in outcomes]
        )
        recorded = [outcome for outcome in outcomes if outcome.delivery.pk in held]
        rows_insert(Attempt, [outcome.attempt for outcome in recorded])
        rollups_record(attempts=[outcome.attempt for outcome in recorded])
    alerts.attempts_observe(attempts=[outcome.attempt for outcome in recorded])
    for outcome in outcomes:
        if outcome.delivery.pk not in held:
            logger.warning(
                "postback attempt not recorded: the delivery was claimed again after its lease ran out",
                extra={
                    "delivery_id": str(outcome.delivery.delivery_id),
                    "attempt": outcome.attempt.number,
                    "outcome": outcome.attempt.outcome,
                    "error": outcome.attempt.error,
                },
            )
    return recorded


def _held(delivery: Delivery) -> dict:
    """What the row holds while this worker's claim on it stands."""
    return {"status": Delivery.Status.SENDING, "lease_expires_at": delivery.lease_expires_at}


def _attempt_report(outcome: _Outcome) -> None:
    """A log line and the metrics for one recorded attempt."""
    delivery, attempt = outcome.delivery, outcome.attempt
    partner = delivery.configuration.partner_label
    logger.info(
        "postback attempt",
        extra={
            "delivery_id": str(delivery.delivery_id),
            "app": delivery.app_id,
            "partner": partner,
            "configuration": delivery.configuration_id,
            "attempt": attempt.number,
            "status": attempt.response_status,
            "outcome": attempt.outcome,
            "duration_ms": attempt.duration_ms,
            "error": attempt.error,
        },
    )
    metrics.ATTEMPTS.labels(partner=partner, outcome=attempt.outcome).inc()
    metrics.ATTEMPT_DURATION.labels(partner=partner).observe(attempt.duration_ms / 1000)
    if attempt.outcome == Attempt.Outcome.DELIVERED and delivery.due_at:
        waited = (outcome.changes["finished_at"] - delivery.due_at).total_seconds()
        metrics.DELIVERY_LATENCY.labels(partner=partner).observe(max(0.0, waited))


def secret_values_of(configuration: PostbackConfiguration) -> list[str]:
    """Values of the partner's secret network-specific fields, to mask wherever a log shows them."""
    partner_configuration = configuration.partner_configuration
    if partner_configuration is None:
        return []
    names = {field.name for field in partner_configuration.partner.fields.all() if field.is_secret}
    return [value for name, value in partner_configuration.field_values.items() if name in names and value]


def masked_headers(headers: dict[str, str], secrets: list[str]) -> dict[str, str]:
    """Headers as logs and pages show them: credentials headers hidden, secret values masked."""
    return {name: MASK if name.lower() in SECRET_HEADERS else mask(value, secrets) for name, value in headers.items()}


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK).replace(quote(secret, safe=""), MASK)
    return text
