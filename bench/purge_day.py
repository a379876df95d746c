"""Time retention's steps on a prefilled database: what a day of each kind costs to expire.

    .venv/bin/python bench/purge_day.py --days 27 [--at 00:30] [--database postbacks_bench_size]

On a database bench/prefill.py filled (30 days of rows), with every *_RETENTION_DAYS set to
`--days`, it times kind by kind what a retention run deletes (postbacks/retention.expiring,
each through expiring_delete: its partitioned days dropped, each logged with its rows and the
time it ended, then the rest in batches); the devices' check is left out. The run's clock is
today at `--at` (UTC), as the daily schedule runs it (00:30): the cut-off is then just past a
midnight, and what goes in batches is the half hour after it. It deletes for real: run it
again with one day less to measure the next day.
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
import logging, time
from datetime import datetime, time as time_of_day, UTC
from postbacks import retention
from project import clock

logging.basicConfig(level=logging.INFO, format="  %(asctime)s %(message)s")  # each day dropped, as it goes
now = datetime.combine(datetime.now(UTC).date(), time_of_day.fromisoformat("{at}"), tzinfo=UTC)
for each in retention.expiring(now=now, click_days={days}):
    start = time.perf_counter()
    deleted = retention.expiring_delete(each)
    print(f"{{each.kind:16}} {{deleted:>9,}} rows  {{time.perf_counter() - start:6.1f}} s", flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/"))
    parser.add_argument("--database", default="postbacks_bench_size")
    parser.add_argument("--days", type=int, required=True, help="the retention of every kind, in days")
    parser.add_argument("--at", default="00:30", help="the time of day (UTC) the run's clock says, today")
    args = parser.parse_args()
    env = django_env(args.server.rstrip("/") + "/" + args.database) | {
        f"{kind}_RETENTION_DAYS": str(args.days) for kind in ("DELIVERY", "EVENT", "DEVICE", "CLICK")
    }
    subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", STEPS.format(days=args.days, at=args.at)], cwd=ROOT, env=env, check=True
    )


if __name__ == "__main__":
    main()
