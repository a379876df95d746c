"""Rate limits: a fixed one-minute window per key, e.g. an app's API key (`app:<id>`, in
events), a click's IP address and its tracker (`click-ip:<address>`, `click-tracker:<id>`).

Counted in Redis when REDIS_URL is set, so every process and machine shares the count; else
in this process's memory (fine for one machine, as the README says).

With Redis, a process adds its counts to the shared count in small batches: it admits up
to `slack` (a thousandth of the limit, at most 100; none below a limit of 1,000) on what
Redis last told it, then adds them with one round trip, and at least once a second. A key
can thus pass its limit by at most `slack` per process, 0.1 %. Counting each request in
Redis cost more CPU than storing its event.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass

import redis
from django.conf import settings

from project import clock

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
KEY_PREFIX = "postbacks:rate:"
MAX_SLACK = 100
SYNC_SECONDS = 1.0
# A Redis that hangs must not hang the API: past this the request is admitted uncounted.
REDIS_TIMEOUT_SECONDS = 0.5


def rate_limit_admits(*, key: str, limit: int, cost: int = 1, now: float | None = None) -> tuple[bool, int]:
    """Count `cost` (a request, or the events of a batch) against `key`; whether the window's
    count still fits in `limit`, and the seconds until the next window. What is refused
    counts too. Admitted uncounted when Redis cannot be reached."""
    now = clock.now().timestamp() if now is None else now  # tests move the window with clock.frozen
    window = int(now // WINDOW_SECONDS)
    retry_after = WINDOW_SECONDS - int(now % WINDOW_SECONDS)
    counts = _shared if settings.REDIS_URL else _local
    try:
        count = counts.count(key=key, window=window, limit=limit, cost=cost, now=now)
    except redis.RedisError:
        # Keep accepting events rather than refuse them all.
        logger.warning("rate limit not checked: Redis is unreachable", exc_info=True)
        return True, retry_after
    return count <= limit, retry_after


def slack_for(limit: int) -> int:
    return min(limit // 1000, MAX_SLACK)


@dataclass
class _Tally:
    window: int
    known: int = 0  # the shared count when Redis last answered
    pending: int = 0  # admitted here since, not yet added to it
    synced_at: float = 0.0


class _SharedCounts:
    """This process's view of the counts in Redis."""

    def __init__(self):
        self._lock = threading.Lock()
        self._window = -1
        self._tallies: dict[str, _Tally] = {}
        self._failed_at = float("-inf")

    def count(self, *, key: str, window: int, limit: int, cost: int, now: float) -> int:
        with self._lock:
            if now - self._failed_at < SYNC_SECONDS:
                return 0  # Redis failed just now: admit uncounted, and do not wait on it again yet
            if window > self._window:  # forget past windows' keys (a key per IP adds up)
                self._window = window
                self._tallies = {name: tally for name, tally in self._tallies.items() if tally.window >= window}
            tally = self._tallies.get(key)
            if tally is None or tally.window != window:
                tally = self._tallies[key] = _Tally(window=window, synced_at=now)
            tally.pending += cost
            if tally.pending <= slack_for(limit) and now - tally.synced_at < SYNC_SECONDS:
                return tally.known + tally.pending
            pending, tally.pending, tally.synced_at = tally.pending, 0, now
        # The round trip runs outside the lock; a failed one loses only its own batch.
        redis_key = f"{KEY_PREFIX}{key}:{window}"
        try:
            pipeline = _redis(settings.REDIS_URL).pipeline(transaction=False)
            total, _ = pipeline.incrby(redis_key, pending).expire(redis_key, 2 * WINDOW_SECONDS).execute()
        except redis.RedisError:
            self._failed_at = now
            raise
        with self._lock:
            tally.known = max(tally.known, total)
            return total + tally.pending

    def clear(self) -> None:
        with self._lock:
            self._window, self._tallies, self._failed_at = -1, {}, float("-inf")


class _LocalCounts:
    """This process's own counts, of the current window only."""

    def __init__(self):
        self._lock = threading.Lock()
        self._window = -1
        self._counts: dict[str, int] = {}

    def count(self, *, key: str, window: int, limit: int, cost: int, now: float) -> int:
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}
            self._counts[key] = count = self._counts.get(key, 0) + cost
            return count

    def clear(self) -> None:
        with self._lock:
            self._window, self._counts = -1, {}


@functools.cache
def _redis(url: str) -> redis.Redis:
    """One connection pool per process."""
    return redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS)


_shared = _SharedCounts()
_local = _LocalCounts()


def click_within_rate_limit(*, ip: str | None, tracker_id: str) -> bool:
    """Whether a click may be recorded: within CLICK_RATE_LIMIT_PER_IP_PER_MINUTE for its
    address, then within CLICK_RATE_LIMIT_PER_TRACKER_PER_MINUTE for its tracker (0: no
    limit). A click its address's limit refuses does not count against its tracker's, so one
    flooding address cannot use up a campaign's budget."""
    limits = (
        (f"click-ip:{ip or ''}", settings.CLICK_RATE_LIMIT_PER_IP_PER_MINUTE),
        (f"click-tracker:{tracker_id}", settings.CLICK_RATE_LIMIT_PER_TRACKER_PER_MINUTE),
    )
    return all(not limit or rate_limit_admits(key=key, limit=limit)[0] for key, limit in limits)
