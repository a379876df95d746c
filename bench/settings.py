"""Settings for benchmarks: the product's own, plus a baseline view and no rate limit."""

from project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
API_RATE_LIMIT_PER_MINUTE = 0
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
