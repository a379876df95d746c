"""Settings for benchmarks: the product's own, plus a baseline view; no rate limit unless asked."""

import os

from project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
API_RATE_LIMIT_PER_MINUTE = int(os.environ.get("BENCH_RATE_LIMIT", "0"))
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
