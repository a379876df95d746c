"""The rate limits' count (events.rate_limit): windows, keys, costs, Redis, and Redis away."""

import logging
import socket
import threading
import time

import pytest
import redis

from events import rate_limit
from events.rate_limit import rate_limit_admits

WINDOW_START = 1_800_000_000.0  # a window's first second (divisible by 60)


@pytest.fixture
def counting_in_redis(redis_url, settings, fresh_rate_limit):
    settings.REDIS_URL = redis_url
    return redis_url


def shared_count(url: str, key: str, now: float) -> int | None:
    value = redis.Redis.from_url(url).get(f"{rate_limit.KEY_PREFIX}{key}:{int(now // 60)}")
    return None if value is None else int(value)


def test_each_key_has_its_own_count_in_each_one_minute_window(fresh_rate_limit):
    admitted = [rate_limit_admits(key="app:1", limit=2, now=WINDOW_START + second) for second in (0, 30, 59.5)]
    assert admitted == [(True, 60), (True, 30), (False, 1)]
    assert rate_limit_admits(key="app:2", limit=2, now=WINDOW_START + 59) == (True, 1)
    assert rate_limit_admits(key="app:1", limit=2, now=WINDOW_START + 60) == (True, 60)  # a new window


def test_a_cost_counts_as_that_many_and_what_is_refused_counts_too(fresh_rate_limit):
    now = WINDOW_START + 10
    assert rate_limit_admits(key="app:1", limit=10, cost=6, now=now)[0]
    assert not rate_limit_admits(key="app:1", limit=10, cost=5, now=now)[0]  # 11: refused whole
    assert not rate_limit_admits(key="app:1", limit=10, now=now)[0]  # the refused five counted
    assert rate_limit_admits(key="app:1", limit=10, cost=10, now=now + 60)[0]  # a new window


@pytest.mark.redis
def test_costs_are_counted_in_redis(counting_in_redis):
    redis_url = counting_in_redis
    limit = 100_000  # slack: 100 a process
    now = WINDOW_START + 1
    assert rate_limit_admits(key="app:3", limit=limit, cost=60, now=now)[0]
    assert shared_count(redis_url, "app:3", now) is None  # within the slack
    assert rate_limit_admits(key="app:3", limit=limit, cost=1000, now=now)[0]
    assert shared_count(redis_url, "app:3", now) == 1060  # past it: added at once
    assert not rate_limit_admits(key="app:3", limit=limit, cost=99_000, now=now)[0]


@pytest.mark.redis
def test_a_process_forgets_the_keys_of_past_windows(counting_in_redis):
    for address in range(50):
        rate_limit_admits(key=f"click-ip:10.0.0.{address}", limit=100_000, now=WINDOW_START)
    rate_limit_admits(key="click-ip:10.0.1.1", limit=100_000, now=WINDOW_START + 60)
    assert list(rate_limit._shared._tallies) == ["click-ip:10.0.1.1"]


@pytest.mark.redis
def test_a_small_limit_is_counted_in_redis_at_every_request(counting_in_redis):
    redis_url = counting_in_redis
    now = time.time()
    other_process = redis.Redis.from_url(redis_url)
    key = f"{rate_limit.KEY_PREFIX}app:7:{int(now // 60)}"
    other_process.set(key, 5)  # another worker's requests in this window
    assert rate_limit_admits(key="app:7", limit=6, now=now)[0]
    assert not rate_limit_admits(key="app:7", limit=6, now=now)[0]
    assert shared_count(redis_url, "app:7", now) == 7
    assert 0 < other_process.ttl(key) <= 120  # the window's count does not outlive it for long
    assert not rate_limit._local._counts  # nothing counted in this process instead


@pytest.mark.redis
def test_a_large_limit_is_counted_in_redis_in_batches_of_a_thousandth(counting_in_redis):
    redis_url = counting_in_redis
    limit = 100_000  # slack: 100 requests a process
    now = WINDOW_START + 1
    assert all(rate_limit_admits(key="app:8", limit=limit, now=now)[0] for _ in range(100))
    assert shared_count(redis_url, "app:8", now) is None  # not one round trip yet
    assert rate_limit_admits(key="app:8", limit=limit, now=now)[0]
    assert shared_count(redis_url, "app:8", now) == 101  # the batch, in one
    # Other processes filled the window: this one admits at most its slack before it hears.
    redis.Redis.from_url(redis_url).incrby(f"{rate_limit.KEY_PREFIX}app:8:{int(now // 60)}", limit)
    admitted = [rate_limit_admits(key="app:8", limit=limit, now=now)[0] for _ in range(150)]
    assert admitted == [True] * 100 + [False] * 50
    # A quiet process still adds what it admitted within a second.
    assert rate_limit_admits(key="app:9", limit=limit, now=now)[0]
    assert shared_count(redis_url, "app:9", now) is None
    assert rate_limit_admits(key="app:9", limit=limit, now=now + 1.5)[0]
    assert shared_count(redis_url, "app:9", now) == 2


def test_an_unreachable_redis_admits_requests_uncounted(settings, caplog, fresh_rate_limit):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once closed
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    with caplog.at_level(logging.WARNING, logger="events.rate_limit"):
        assert rate_limit_admits(key="app:1", limit=1, now=WINDOW_START)[0]
        assert rate_limit_admits(key="app:1", limit=1, now=WINDOW_START + 2)[0]
    assert caplog.text.count("Redis is unreachable") == 2


def test_a_redis_that_never_answers_costs_one_wait_a_second_not_one_a_request(settings, fresh_rate_limit):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        connections = []

        def accept_all():
            while True:
                try:
                    connections.append(silent.accept()[0])
                except OSError:
                    return

        threading.Thread(target=accept_all, daemon=True).start()
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        # Waits out the client's 0.5 s timeout, not redis-py's default of 5 s. In a thread,
        # so that a hang fails the test instead of holding CI; the bound is loose on purpose.
        first = []
        caller = threading.Thread(
            target=lambda: first.append(rate_limit_admits(key="app:1", limit=1, now=WINDOW_START))
        )
        caller.start()
        caller.join(timeout=3)
        assert first and first[0][0], "a silent Redis held the request"
        for offset in (0.1, 0.5, 0.9):  # within the second after: admitted without trying again
            assert rate_limit_admits(key="app:1", limit=1, now=WINDOW_START + offset)[0]
        time.sleep(0.2)  # let the accepting thread catch up with any connection made
        assert len(connections) == 1
        for connection in connections:
            connection.close()
