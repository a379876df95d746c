"""The statistics page's and the dashboard's figures, read from the per-minute rollups, beside
the scan of the deliveries and attempts tables they replaced, on PostgreSQL.

    .venv/bin/python bench/statistics_page.py [--deliveries 1000000] [--baseline f3fb797]

Creates a scratch database `postbacks_bench_stats` on the server DATABASE_URL names (default
postgres://postgres@127.0.0.1:5432/postgres), fills it by SQL with `--deliveries` deliveries
of 10 configurations spread over 30 days (90 % delivered, 5 % failed on a 404, 4 % skipped,
1 % retrying on a refused connection), one attempt each, and the rollups those attempts make
(grouped by SQL as rollups_record groups them). Then it times, median of 3:
  before   delivery_stats of the `--baseline` commit's postbacks/selectors.py (the scan)
  after    postbacks.statistics.delivery_stats, and the dashboard's failing-now selector
for the 24-hour and 30-day windows, and the send path's added write: rollups_record for a
batch of 100 attempts (10 configurations), in its transaction.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import time
import types
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import analyze, scratch_database  # noqa: E402

CONFIGURATIONS = 10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--baseline", default="f3fb797", help="commit whose selectors.delivery_stats scanned")
    parser.add_argument("--reuse", action="store_true", help="measure the database a previous run filled")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    url = (
        urlsplit(server)._replace(path="/postbacks_bench_stats").geturl()
        if args.reuse
        else scratch_database(server, "postbacks_bench_stats")
    )
    os.environ.update(DATABASE_URL=url, SECRET_KEY=os.environ.get("SECRET_KEY", "bench-only"), LOG_LEVEL="WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    if not args.reuse:
        call_command("migrate", verbosity=0)
        started = time.monotonic()
        fill(args.deliveries)
        print(f"filled {args.deliveries:,} deliveries in {time.monotonic() - started:.0f} s")
        analyze(url)
    measure(baseline=args.baseline)


def fill(deliveries: int) -> None:
    from django.db import connection

    from events.models import Account, App, Device, Event
    from postbacks.models import Delivery, PostbackConfiguration
    from project import clock

    now = clock.now()
    account = Account.objects.create(name="Bench")
    app = App.objects.create(account=account, name="Bench", platform="android", package_name="com.bench")
    device = Device.objects.create(app=app)
    template = Event.objects.create(
        app=app, device=device, name="install", event_id="template", occurred_at=now, received_at=now, device_ids={}
    )
    configurations = [
        PostbackConfiguration.objects.create(
            app=app, event="install", kind="custom", destination_url=f"https://hook{n}.bench.test/in"
        ).pk
        for n in range(CONFIGURATIONS)
    ]
    Delivery.objects.create(app=app, configuration_id=configurations[0], event=template, device=device, created_at=now)
    with connection.cursor() as cursor:
        copy_rows(
            cursor,
            "events_event",
            {"event_id": "'bench-' || g"},
            f"generate_series(1, {deliveries // CONFIGURATIONS}) g",
        )
        spread = "make_interval(mins => ((e.id * 7919) %% (30 * 24 * 60))::int)"  # %% : a parameter follows
        kind = "(e.id * 31 + c.n) %% 100"
        copy_rows(
            cursor,
            "postbacks_delivery",
            {
                "delivery_id": "gen_random_uuid()",
                "configuration_id": "c.id",
                "event_id": "e.id",
                "created_at": f"%(now)s - {spread}",
                "status": f"CASE WHEN {kind} < 90 THEN 'delivered' WHEN {kind} < 95 THEN 'failed' "
                f"WHEN {kind} < 99 THEN 'skipped' ELSE 'scheduled' END",
                "attempts": f"CASE WHEN {kind} < 95 OR {kind} >= 99 THEN 1 ELSE 0 END",
                "due_at": f"CASE WHEN {kind} >= 99 THEN %(now)s + interval '10 minutes' END",
                "finished_at": f"CASE WHEN {kind} < 95 THEN %(now)s - {spread} END",
                "last_status_code": f"CASE WHEN {kind} < 90 THEN 200 WHEN {kind} < 95 THEN 404 END",
            },
            "events_event e, (SELECT id, row_number() OVER (ORDER BY id) n FROM postbacks_postbackconfiguration) c "
            f"WHERE e.app_id = {app.pk} AND e.event_id <> 'template' "
            "AND t.id = (SELECT min(id) FROM postbacks_delivery)",
            source_alias_free=True,
            params={"now": now},
        )
        cursor.execute("DELETE FROM postbacks_delivery WHERE event_id = %s", [template.pk])
        cursor.execute(
            """INSERT INTO postbacks_attempt (delivery_id, number, started_at, duration_ms, method, url, captured_url,
                   request_headers, request_body, response_status, response_headers, response_body, error, outcome)
               SELECT id, 1, created_at, 40 + (id * 37) % 900, 'GET', url, '', '{}', '', last_status_code, '{}', '',
                   CASE status WHEN 'failed' THEN 'HTTP 404' WHEN 'scheduled' THEN 'Connection failed' ELSE '' END,
                   CASE status WHEN 'delivered' THEN 'delivered' WHEN 'failed' THEN 'failed' ELSE 'retry' END
               FROM postbacks_delivery WHERE attempts > 0"""
        )
        rollups_fill(cursor)


def copy_rows(cursor, table: str, changes: dict[str, str], source: str, *, source_alias_free=False, params=None):
    """INSERT copies of the table's first row (alias t), with `changes` (column -> SQL) from `source`."""
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position", [table]
    )
    columns = [name for (name,) in cursor.fetchall() if name != "id"]
    values = ", ".join(changes.get(name, f"t.{name}") for name in columns)
    where = "" if source_alias_free else f" WHERE t.id = (SELECT min(id) FROM {table})"
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {table} t, {source}{where}", params or {}
    )


def rollups_fill(cursor) -> None:
    """The rollups the attempts above would have made, grouped as rollups_record groups them."""
    from postbacks.models import RESPONSE_BUCKETS_MS, delay_bucket_fields, response_bucket_fields

    bounds = [0, *RESPONSE_BUCKETS_MS, 10**9]
    buckets = ", ".join(
        f"count(*) FILTER (WHERE a.duration_ms >= {low} AND a.duration_ms < {high})"
        for low, high in itertools.pairwise(bounds)
    )
    # Delivered at once (finished when created): every delivered one waited under a second.
    delays = ", ".join(["count(*) FILTER (WHERE a.outcome = 'delivered')"] + ["0"] * (len(delay_bucket_fields()) - 1))
    cursor.execute(
        f"""INSERT INTO postbacks_deliveryminute (app_id, configuration_id, minute, outcome, cause, attempts,
               duration_ms_sum, {", ".join(response_bucket_fields() + delay_bucket_fields())})
           SELECT d.app_id, d.configuration_id, date_trunc('minute', a.started_at), a.outcome,
               CASE a.outcome WHEN 'failed' THEN 'http_4xx' WHEN 'retry' THEN 'connect' ELSE '' END,
               count(*), sum(a.duration_ms), {buckets}, {delays}
           FROM postbacks_attempt a JOIN postbacks_delivery d ON d.id = a.delivery_id
           GROUP BY 1, 2, 3, 4, 5"""
    )


def timed(function, runs: int = 3) -> float:
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


def measure(*, baseline: str) -> None:
    from django.db import connection, transaction

    from postbacks.models import Attempt, Delivery, DeliveryMinute, PostbackConfiguration
    from postbacks.rollups import rollups_record
    from postbacks.statistics import configurations_failing_now, delivery_stats
    from project import clock

    old_source = subprocess.run(
        ["git", "show", f"{baseline}:postbacks/selectors.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    old_module = types.ModuleType("bench_old_selectors")
    sys.modules[old_module.__name__] = old_module  # dataclasses look their module up
    exec(compile(old_source, f"{baseline}:postbacks/selectors.py", "exec"), old_module.__dict__)
    old = old_module.__dict__

    print(
        f"deliveries {Delivery.objects.count():,} · attempts {Attempt.objects.count():,} · "
        f"rollup rows {DeliveryMinute.objects.count():,}"
    )
    for window, span, step in (("24 h", timedelta(hours=24), "hour"), ("30 days", timedelta(days=30), "day")):
        since = clock.now() - span
        before = timed(lambda since=since: old["delivery_stats"](deliveries=Delivery.objects.all(), since=since))
        after = timed(
            lambda since=since, step=step: delivery_stats(
                configurations=PostbackConfiguration.objects.all(), since=since, step=step
            )
        )
        print(f"statistics, {window}: before (scan) {before * 1000:,.0f} ms · after (rollups) {after * 1000:,.1f} ms")
    failing = timed(lambda: configurations_failing_now(configurations=PostbackConfiguration.objects.all()))
    print(f"dashboard, configurations failing now: {failing * 1000:,.1f} ms")

    deliveries = [
        delivery
        for configuration in DeliveryMinute.objects.values_list("configuration_id", flat=True).distinct()
        for delivery in Delivery.objects.select_related("configuration").filter(
            configuration_id=configuration, attempts__gt=0
        )[:10]
    ]
    now = clock.now()
    batch = [
        Attempt(delivery=delivery, started_at=now, duration_ms=120, outcome="delivered", response_status=200)
        for delivery in deliveries
    ]

    # Inside one transaction, as the send path calls it: the statement's cost, not a commit's.
    with transaction.atomic():
        rollups_record(attempts=batch)
        per_batch = timed(lambda: rollups_record(attempts=batch), runs=50)
        transaction.set_rollback(True)
    configurations = len({delivery.configuration_id for delivery in deliveries})
    print(
        f"send path: rollups_record of a batch of {len(batch)} attempts ({configurations} configuration(s)): "
        f"{per_batch * 1000:.2f} ms"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('postbacks_deliveryminute'))")
        print(f"rollups table size: {cursor.fetchone()[0]}")


if __name__ == "__main__":
    main()
