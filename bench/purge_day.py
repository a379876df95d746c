"""Time retention's steps on a prefilled database: what a day of each kind costs to expire.

    .venv/bin/python bench/purge_day.py --days 27 [--database postbacks_bench_size]

On a database bench/prefill.py filled (30 days of rows), with every *_RETENTION_DAYS set to
`--days`, it runs and times one by one what a retention run does for deliveries, events and
clicks: the days dropped with their partitions (postbacks/partitions.days_drop), then the
batched deletes of what is left (postbacks/retention.expired_delete). It deletes for real:
run it again with one day less to measure the next day.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import PYTHON, django_env  # noqa: E402

STEPS = """
import time
from datetime import UTC, timedelta
from postbacks import partitions, retention
from project import clock

cut = clock.now() - timedelta(days={days})
before = cut.astimezone(UTC).date()


def timed(label, function):
    start = time.perf_counter()
    result = function()
    print(f"{{label:58}} {{result:>9,}} rows  {{time.perf_counter() - start:6.1f}} s", flush=True)


deliveries = retention.deliveries_expired(cutoff=cut)
timed("deliveries' attempts: days dropped (their deliveries)", lambda: partitions.days_drop(
    partitions.ATTEMPTS, expired=deliveries, before=before))
timed("deliveries: batched deletes", lambda: retention.expired_delete(deliveries, order="created_at"))
events = retention._expired_events(cut)
timed("events: days dropped", lambda: partitions.days_drop(
    partitions.EVENTS, expired=events, before=before, dependents=retention._events_unlink))
timed("events: batched deletes of the rest of the cut-off's day", lambda: retention.expired_delete(
    events, order="received_at"))
clicks = retention._expired_clicks(cut)
timed("clicks: days dropped", lambda: partitions.days_drop(
    partitions.CLICKS, expired=clicks, before=before, dependents=retention._clicks_unlink))
timed("clicks: batched deletes of the rest of the cut-off's day", lambda: retention.expired_delete(
    clicks, order="clicked_at"))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/"))
    parser.add_argument("--database", default="postbacks_bench_size")
    parser.add_argument("--days", type=int, required=True, help="the retention of every kind, in days")
    args = parser.parse_args()
    env = django_env(args.server.rstrip("/") + "/" + args.database) | {
        f"{kind}_RETENTION_DAYS": str(args.days) for kind in ("DELIVERY", "EVENT", "DEVICE", "CLICK")
    }
    subprocess.run([PYTHON, "manage.py", "shell", "-c", STEPS.format(days=args.days)], cwd=ROOT, env=env, check=True)


if __name__ == "__main__":
    main()
