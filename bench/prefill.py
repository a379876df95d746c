"""Fill a migrated database with realistic volume by SQL (generate_series, not the API), for the
benches to measure at size beside empty tables, and time the admin pages a support engineer uses.

    .venv/bin/python bench/prefill.py [--events 10000000] [--reuse]

`prefill(database_url, events=N)` adds to every app the database holds, over the 30 days before
now: N events (one in five an install), N/5 devices with an adid and an android_id each,
3N/10 clicks (half carry an adid, one in ten an android_id, the other ids empty, as clicks from
ad networks do), a delivery per event and postback configuration of its app (90 % delivered,
5 % failed after 3 attempts, 4 % skipped, 1 % retrying) with its attempts, and their per-minute
rollups; then VACUUM ANALYZE. With bench/ingest.py's apps (one of two with two configurations),
N events make N deliveries and about 1.06 N attempts. Run alone, it fills a scratch database
(`postbacks_bench_size`) with the apps of bench/ingest.py and times each admin page (median of
3) on it; --reuse times the database again (e.g. the one bench/ingest.py --prefill left).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import PYTHON, SETUP, django_env, scratch_database  # noqa: E402
from project import partitioning  # noqa: E402

SPREAD = "make_interval(secs => (({n})::bigint * 7919 % (30 * 86400))::int)"  # 30 days, scattered, by row number


def prefill(database_url: str, *, events: int) -> None:
    devices, clicks = events // 5, events * 3 // 10
    with psycopg.connect(database_url, autocommit=True) as db:
        # The rows are consistent by construction: their foreign keys are not checked one by
        # one (each a trigger), which would double the time of the fill.
        db.execute("SET session_replication_role = replica")
        apps = [app for (app,) in db.execute("SELECT id FROM events_app ORDER BY id")]
        db.execute(
            "INSERT INTO partners_partner (slug, name, kind, website, description, illustrative_note, documentation) "
            "VALUES ('bench-network', 'Bench network', 'network', '', '', '', '') ON CONFLICT DO NOTHING"
        )
        (network,) = db.execute("SELECT id FROM partners_partner WHERE slug = 'bench-network'").fetchone()
        for app in apps:
            db.execute(
                "INSERT INTO events_tracker (id, kind, campaign_id, campaign_name, site_id, creative_id, "
                "destination_url, created_at, app_id, network_id) VALUES (%s, 'acquisition', '', 'Bench', '', '', "
                "'https://play.example/store', now(), %s, %s) ON CONFLICT DO NOTHING",
                [f"trk_bench{app}", app, network],
            )
        # The past days' partitions (a database migrated today has today's and the coming week's).
        today = db.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
        with db.transaction(), db.cursor() as cursor:
            for table in ("events_event", "events_click", "postbacks_delivery", "postbacks_attempt"):
                partitioning.partitions_ensure(cursor, table=table, first=today - timedelta(days=31), last=today)
        # Rows are numbered g; row g belongs to app apps[g % len(apps)], device g of the devices.
        app_of = f"(ARRAY{apps})[1 + g % {len(apps)}]"
        (first_device,) = db.execute("SELECT coalesce(max(id), 0) + 1 FROM events_device").fetchone()
        db.execute(
            f"""INSERT INTO events_device (id, installed_at, install_count, campaign_id, campaign_name, created_at,
                   app_id, att_status)
               OVERRIDING SYSTEM VALUE
               SELECT {first_device} + g, now() - {SPREAD.format(n="g")}, 1, '', '', now() - {SPREAD.format(n="g")},
                   {app_of}, ''
               FROM generate_series(0, {devices - 1}) g"""
        )
        db.execute(f"SELECT setval(pg_get_serial_sequence('events_device', 'id'), {first_device + devices})")
        for kind, value in (("adid", "md5('a' || g)::uuid::text"), ("android_id", "left(md5('i' || g), 16)")):
            db.execute(
                f"""INSERT INTO events_deviceidentifier (kind, value, app_id, device_id)
                   SELECT '{kind}', {value}, {app_of}, {first_device} + g FROM generate_series(0, {devices - 1}) g"""
            )
        # Clicks carry the ids of devices (g % devices): half an adid, one in ten an android_id.
        db.execute(
            f"""INSERT INTO events_click (clicked_at, click_id, adid, idfa, idfv, android_id, device_id, ip,
                   user_agent, parameters, app_id, tracker_id)
               SELECT now() - {SPREAD.format(n="g")}, 'clk' || g,
                   CASE WHEN g % 2 = 0 THEN md5('a' || (g % {devices}))::uuid::text ELSE '' END, '', '',
                   CASE WHEN g % 10 = 1 THEN left(md5('i' || (g % {devices})), 16) ELSE '' END, '', '203.0.113.9',
                   'Mozilla/5.0 (Linux; Android 14)', '{{"sub1": "x"}}', {app_of}, 'trk_bench' || {app_of}
               FROM generate_series(0, {clicks - 1}) g"""
        )
        # Events: device g % devices (so of the same app), one in five an install.
        db.execute(
            f"""INSERT INTO events_event (event_id, name, device_ids, occurred_at, received_at, ip, user_agent,
                   os_version, app_version, country, revenue, currency, value, properties, is_reinstall,
                   is_reengagement, postbacks_scheduled, app_id, device_id, att_status, device_model, language)
               SELECT 'pre-' || g, CASE WHEN g % 5 = 0 THEN 'install' WHEN g % 5 = 1 THEN 'purchase'
                       ELSE 'session_begin' END,
                   jsonb_build_object('adid', md5('a' || (g % {devices}))::uuid::text),
                   now() - {SPREAD.format(n="g")}, now() - {SPREAD.format(n="g")}, '203.0.113.7', 'Dalvik/2.1.0',
                   '14', '3.2.1', 'US', CASE WHEN g % 5 = 1 THEN 4.99 END, CASE WHEN g % 5 = 1 THEN 'USD' ELSE '' END,
                   '', '{{}}', false, false, 0, {app_of}, {first_device} + g % {devices}, '', '', ''
               FROM generate_series(0, {events - 1}) g"""
        )
        # Their keys, kept as long as retention keeps them (postbacks/retention.event_keys_kept_days).
        db.execute(
            """INSERT INTO events_eventkey (event_id, app_id, key, received_at)
               SELECT id, app_id, event_id, received_at FROM events_event
               WHERE event_id LIKE 'pre-%' AND received_at >= now() - interval '8 days'"""
        )
        # One delivery per event and configuration of its app; one attempt per delivery that
        # was tried, three per failed one. Those still to retry are due in 30 days, to a
        # closed local port: a bench's workers never send them. Their ids are stamped with the
        # day they were created, as the database stamps a new one's.
        kind = "(e.id * 31) % 100"
        db.execute(
            f"""INSERT INTO postbacks_delivery (id, delivery_id, status, skip_reason, method, url, headers, body,
                   max_attempts, attempts, due_at, created_at, finished_at, last_status_code, last_error, app_id,
                   configuration_id, device_id, event_id, event_name, deferrals, withheld)
               SELECT day_stamped_id('postbacks_delivery_id_seq', e.received_at), gen_random_uuid(),
                   CASE WHEN {kind} < 90 THEN 'delivered' WHEN {kind} < 95 THEN 'failed'
                       WHEN {kind} < 99 THEN 'skipped' ELSE 'scheduled' END,
                   '', 'GET', 'http://127.0.0.1:9/prefilled?event_id=' || e.event_id, '{{}}', '', 3,
                   CASE WHEN {kind} < 90 OR {kind} >= 99 THEN 1 WHEN {kind} < 95 THEN 3 ELSE 0 END,
                   CASE WHEN {kind} >= 99 THEN now() + interval '30 days' END, e.received_at,
                   CASE WHEN {kind} < 95 THEN e.received_at END,
                   CASE WHEN {kind} < 90 THEN 200 WHEN {kind} < 95 THEN 404 END, '', e.app_id, c.id, e.device_id,
                   e.id, e.name, 0, ''
               FROM events_event e
               JOIN postbacks_postbackconfiguration c ON c.app_id = e.app_id
               WHERE e.event_id LIKE 'pre-%'
               ORDER BY e.received_at"""  # as they come: each day's ids in order, the index appended to
        )
        db.execute(
            """INSERT INTO postbacks_attempt (delivery_id, number, started_at, duration_ms, method, url, captured_url,
                   request_headers, request_body, response_status, response_headers, response_body, error, outcome)
               SELECT id, n, created_at + make_interval(mins => n - 1), 40 + (id * 37) % 900, 'GET', url, '', '{}',
                   '', last_status_code, '{}', '',
                   CASE status WHEN 'failed' THEN 'HTTP 404' WHEN 'scheduled' THEN 'Connection failed' ELSE '' END,
                   CASE WHEN status = 'delivered' THEN 'delivered' WHEN status = 'failed' AND n = attempts THEN 'failed'
                       ELSE 'retry' END
               FROM postbacks_delivery, generate_series(1, attempts) n WHERE url LIKE 'http://127.0.0.1:9/prefilled?event_id=pre-%'"""
        )
        subprocess.run(
            [PYTHON, "manage.py", "shell", "-c", ROLLUPS], cwd=ROOT, env=django_env(database_url), check=True
        )
        db.execute("VACUUM ANALYZE")


ROLLUPS = """
from django.db import connection
from bench.statistics_page import rollups_fill
with connection.cursor() as cursor:
    rollups_fill(cursor)
"""


def sizes(database_url: str) -> str:
    with psycopg.connect(database_url) as db:
        counts = []
        for table, label in (
            ("events_event", "events"),
            ("events_device", "devices"),
            ("events_click", "clicks"),
            ("postbacks_delivery", "deliveries"),
            ("postbacks_attempt", "attempts"),
        ):
            (rows,) = db.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [table]).fetchone()
            counts.append(f"{label} {rows:,}")
        return " · ".join(counts)


ADMIN_TIMINGS = """
import statistics, time
from django.contrib.auth.models import User
from django.test import Client
from events.models import App, Device, Event
from partners.models import Partner
from postbacks.models import Delivery
user = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser("bench-admin", "", "x")
client = Client()
client.force_login(user)
app = App.objects.order_by("id").last()
delivery = Delivery.objects.filter(app=app).order_by("id").last()
event = delivery.event
adid = event.device_ids["adid"]
partner = Partner.objects.order_by("id").first()
pages = [
    ("delivery log", "/admin/postbacks/delivery/"),
    ("  status failed", "/admin/postbacks/delivery/?status__exact=failed"),
    ("  partner", f"/admin/postbacks/delivery/?configuration__partner_configuration__partner__id__exact={partner.pk}"),
    ("  app", f"/admin/postbacks/delivery/?app__id__exact={app.pk}"),
    ("  event name", "/admin/postbacks/delivery/?event_name=purchase"),
    ("  response 4xx", "/admin/postbacks/delivery/?response=4xx"),
    ("  slow", "/admin/postbacks/delivery/?slow=1"),
    ("  search delivery id", f"/admin/postbacks/delivery/?q={delivery.delivery_id}"),
    ("  search event id", f"/admin/postbacks/delivery/?q={event.event_id}"),
    ("  search device id", f"/admin/postbacks/delivery/?q={adid}"),
    ("  a delivery's page", f"/admin/postbacks/delivery/{delivery.pk}/change/"),
    ("events list", "/admin/events/event/"),
    ("  search event id", f"/admin/events/event/?q={event.event_id}"),
    ("  an event's page", f"/admin/events/event/{event.pk}/change/"),
    ("undelivered now", "/admin/postbacks/delivery/undelivered/"),
    ("statistics, 24 h", "/admin/postbacks/delivery/stats/?window=24h"),
    ("statistics, 7 days", "/admin/postbacks/delivery/stats/?window=7d"),
    ("devices list", "/admin/events/device/"),
    ("  search device id", f"/admin/events/device/?q={adid}"),
    ("clicks list", "/admin/events/click/"),
    ("  search device id", f"/admin/events/click/?q={adid}"),
    ("dashboard", "/admin/"),
]
for label, url in pages:
    durations, status = [], None
    for _ in range(3):
        started = time.perf_counter()
        status = client.get(url).status_code
        durations.append(time.perf_counter() - started)
    print(f"{label:26} {statistics.median(durations) * 1000:8,.0f} ms  (HTTP {status})  {url}")
"""


def admin_timings(database_url: str) -> None:
    env = django_env(database_url) | {"ALLOWED_HOSTS": "testserver", "LOG_LEVEL": "WARNING"}
    subprocess.run([PYTHON, "manage.py", "shell", "-c", ADMIN_TIMINGS], cwd=ROOT, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/"))
    parser.add_argument("--database", default="postbacks_bench_size")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--reuse", action="store_true", help="time the database a previous run filled")
    args = parser.parse_args()
    if args.reuse:
        database_url = urlsplit(args.server)._replace(path=f"/{args.database}").geturl()
    else:
        database_url = scratch_database(args.server, args.database)
        env = django_env(database_url)
        subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run([PYTHON, "manage.py", "shell", "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True)
        started = time.monotonic()
        prefill(database_url, events=args.events)
        print(f"prefilled in {time.monotonic() - started:,.0f} s")
    print(sizes(database_url))
    admin_timings(database_url)


if __name__ == "__main__":
    main()
