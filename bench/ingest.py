"""Benchmark of the events API under gunicorn on PostgreSQL, beside a bare-Django baseline.

    .venv/bin/python bench/ingest.py [--seconds 10] [--clients 4] [--rounds 3] [--rate-limit-redis URL]
                                     [--prefill 10000000]

Starts gunicorn (2 sync workers) on a scratch PostgreSQL database, then alternates rounds
of load on two endpoints with the same realistic JSON body:
  baseline      a bare Django view that parses the body and does one INSERT
  events API    POST /api/v1/events (auth, validation, device, attribution, event), for an
                app without postbacks and for one with postbacks on installs and purchases
and finally POST /api/v1/events/batch with 1,000 events a request. It prints requests/s,
latencies and the ratio to the baseline (target: at least 70 %; batch: 5,000 events/s).
With --prefill N it measures a second database, prefilled by bench/prefill.py with N events
(and their devices, clicks, deliveries and attempts), in the same rounds, alternated with the
empty one, and prints each figure at size as a share of the empty-table one (target: ≥ 90 %).
Everything runs on this machine: client processes share its cores with the server. The
per-key rate limit is off unless --rate-limit-redis names a Redis to count in, as deployed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))  # bench.prefill, when run as a script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scratch_database(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    admin = psycopg.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username, dbname="postgres", autocommit=True
    )
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return parts._replace(path=f"/{name}").geturl()


def analyze(database_url: str) -> None:
    """Refresh the planner's statistics, as autovacuum does on a production server. Some
    machines run PostgreSQL with autovacuum off: there the tables this bench fills would
    never get statistics, and the planner would pick plans no production server would."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("ANALYZE")


def django_env(database_url: str, rate_limit_redis: str = "") -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    if rate_limit_redis:  # as deployed: every request counted in Redis (a limit never reached)
        env.update(REDIS_URL=rate_limit_redis, BENCH_RATE_LIMIT=str(10**9))
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=database_url,
        SECRET_KEY="bench-only",
        ALLOWED_HOSTS="127.0.0.1",
        PYTHONPATH=str(ROOT),
    )
    return env


SETUP = """
from django.db import connection
from events.models import Account, App, CustomEvent
from events.services import app_issue_api_key
from postbacks.models import PostbackConfiguration
account = Account.objects.create(name="Bench")
app = App.objects.create(account=account, name="Bench", platform="android", package_name="com.bench.app")
CustomEvent.objects.create(app=app, name="purchase")
# The same app again, with postbacks on installs and purchases: each such event also stores
# its deliveries, in a transaction.
busy = App(account=account, name="Busy", platform="android", package_name="com.bench.busy")
busy_key = app_issue_api_key(app=busy)
CustomEvent.objects.create(app=busy, name="purchase")
for event in ("install", "purchase"):
    PostbackConfiguration.objects.create(
        app=busy, event=event, kind="custom", destination_url="https://hooks.bench.test/in", macros=["event_id"]
    )
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE bench_baseline (id bigserial primary key, event_id text, body text)")
print(app_issue_api_key(app=app), busy_key)
"""


def body_for(rng: random.Random, worker: int, sequence: int, devices: list[str]) -> dict:
    """One in ten events installs a new device; the rest are sessions and purchases of known ones."""
    if not devices or rng.random() < 0.1:
        adid = str(uuid.UUID(int=rng.getrandbits(128)))
        devices.append(adid)
        name = "install"
    else:
        adid = rng.choice(devices)
        name = rng.choice(["session_begin", "purchase"])
    body = {
        "event_id": f"w{worker}-{sequence}-{rng.getrandbits(32)}",
        "event": name,
        "device": {"adid": adid, "android_id": adid.replace("-", "")[:16]},
        "ip": "203.0.113.7",
        "user_agent": "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A.240205.004)",
        "os_version": "14",
        "app_version": "3.2.1",
        "country": "US",
        "properties": {"screen": "shop", "ab_group": "b"},
    }
    if name == "purchase":
        body.update(revenue="4.99", currency="USD", value="sku-42")
    return body


def load(args: tuple) -> tuple[int, list[float], int]:
    """One client process: requests for `seconds`, a new connection each (sync workers close it)."""
    port, path, key, seconds, worker, batch_size = args
    rng = random.Random(worker * 7919 + int(time.time()))
    devices: list[str] = []
    latencies: list[float] = []
    errors = sequence = 0
    prepared: list[str] = []
    if batch_size:  # build the batches before the clock starts: the client shares the server's cores
        for _ in range(int(seconds * 4) + 2):
            prepared.append(
                json.dumps({"events": [body_for(rng, worker, sequence + i, devices) for i in range(batch_size)]})
            )
            sequence += batch_size
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    while time.monotonic() < deadline and (prepared or not batch_size):
        if batch_size:
            data = prepared.pop(0)  # in the order built: a device's install comes before its sessions
        else:
            data = json.dumps(body_for(rng, worker, sequence, devices))
            sequence += 1
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("POST", path, data, headers)
            response = connection.getresponse()
            response.read()
            if response.status not in (200, 202):
                errors += 1
        except OSError:
            errors += 1
        finally:
            connection.close()
        latencies.append(time.perf_counter() - started)
    return len(latencies), latencies, errors


def run_round(pool, port: int, path: str, key: str, seconds: float, clients: int, batch_size: int = 0) -> dict:
    started = time.monotonic()
    results = pool.map(load, [(port, path, key, seconds, worker, batch_size) for worker in range(clients)])
    elapsed = time.monotonic() - started
    latencies = sorted(latency for _, worker_latencies, _ in results for latency in worker_latencies)
    requests = sum(count for count, _, _ in results)
    return {
        "rate": requests / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": sum(errors for _, _, errors in results),
        "requests": requests,
    }


NEW_KEYS = """
from events.models import App
from events.services import app_issue_api_key
print(app_issue_api_key(app=App.objects.get(name="Bench")), app_issue_api_key(app=App.objects.get(name="Busy")))
"""


def serve(
    database_url: str, rate_limit_redis: str, workers: int, *, prefill_events: int = 0, reuse: bool = False
) -> dict:
    """Migrate and set up a scratch database (prefilled with `prefill_events` if asked; with
    `reuse`, the one an earlier run set up, with new keys), then start gunicorn on it; its
    port, keys and process."""
    env = django_env(database_url, rate_limit_redis)
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    key, busy_key = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", NEW_KEYS if reuse else SETUP],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-2:]
    if reuse:
        from bench.prefill import sizes

        print(f"(reused: {sizes(database_url)})", flush=True)
    elif prefill_events:
        from bench.prefill import prefill, sizes

        started = time.monotonic()
        prefill(database_url, events=prefill_events)
        print(f"(prefilled in {time.monotonic() - started:,.0f} s: {sizes(database_url)})", flush=True)
    port = free_port()
    server = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "project.wsgi",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return {"url": database_url, "port": port, "key": key, "busy_key": busy_key, "server": server}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/"))
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--rate-limit-redis",
        metavar="URL",
        default="",
        help="count every request against the per-key rate limit in this Redis, as deployed (default: no limit)",
    )
    parser.add_argument(
        "--prefill",
        metavar="EVENTS",
        type=int,
        default=0,
        help="also measure, alternately, a second database prefilled with this many events (bench/prefill.py)",
    )
    parser.add_argument(
        "--reuse-prefilled",
        action="store_true",
        help="with --prefill: measure the prefilled database an earlier run left (postbacks_bench_size) as it is",
    )
    args = parser.parse_args()

    setups = {"empty": serve(scratch_database(args.server, "postbacks_bench"), args.rate_limit_redis, args.workers)}
    if args.prefill:
        name = "postbacks_bench_size"
        setups["prefilled"] = serve(
            urlsplit(args.server)._replace(path=f"/{name}").geturl()
            if args.reuse_prefilled
            else scratch_database(args.server, name),
            args.rate_limit_redis,
            args.workers,
            prefill_events=args.prefill,
            reuse=args.reuse_prefilled,
        )
    results = {}
    try:
        with multiprocessing.Pool(args.clients) as pool:
            for setup in setups.values():
                run_round(pool, setup["port"], "/bench/baseline", setup["key"], 2, args.clients)  # warm-up
                run_round(pool, setup["port"], "/api/v1/events", setup["key"], 2, args.clients)
                analyze(setup["url"])
            rounds = {name: {"baseline": [], "events": [], "postbacks": []} for name in setups}
            for _ in range(args.rounds):  # alternate, so drift on a shared machine hits all alike
                for name, setup in setups.items():
                    port, key = setup["port"], setup["key"]
                    rounds[name]["baseline"].append(
                        run_round(pool, port, "/bench/baseline", key, args.seconds, args.clients)
                    )
                    rounds[name]["events"].append(
                        run_round(pool, port, "/api/v1/events", key, args.seconds, args.clients)
                    )
                    rounds[name]["postbacks"].append(
                        run_round(pool, port, "/api/v1/events", setup["busy_key"], args.seconds, args.clients)
                    )
            for setup in setups.values():
                analyze(setup["url"])
            batches = {name: {"batch": [], "busy_batch": []} for name in setups}
            # Alternated too when there are two databases; once, as ever, when there is one.
            for _ in range(args.rounds if args.prefill else 1):
                for name, setup in setups.items():
                    for kind, key in (("batch", setup["key"]), ("busy_batch", setup["busy_key"])):
                        batches[name][kind].append(
                            run_round(
                                pool, setup["port"], "/api/v1/events/batch", key, args.seconds, 2, batch_size=1000
                            )
                        )
            for name in setups:
                results[name] = {"rounds": rounds[name], **{kind: batches[name][kind] for kind in batches[name]}}
    finally:
        for setup in setups.values():
            os.killpg(setup["server"].pid, signal.SIGTERM)
            setup["server"].wait(timeout=30)

    with psycopg.connect(setups["empty"]["url"]) as connection:
        autovacuum = connection.execute("SHOW autovacuum").fetchone()[0]
    print(
        f"gunicorn {args.workers} sync workers, PostgreSQL (autovacuum {autovacuum}; the bench runs ANALYZE "
        f"before the measured rounds and the batches), {args.clients} client processes, "
        f"{args.rounds} alternating rounds of {args.seconds:g} s, median shown; {os.cpu_count()} cores; "
        + (f"rate limit counted in Redis ({args.rate_limit_redis})" if args.rate_limit_redis else "no rate limit")
    )
    figures = {name: report(name, result) for name, result in results.items()}
    if args.prefill:
        print(f"prefilled / empty ({args.prefill:,} events; target: every figure within 10 %):")
        for label in figures["empty"]:
            ratio = figures["prefilled"][label] / figures["empty"][label]
            print(f"  {label:44} {ratio:7.1%}")


def report(name: str, result: dict) -> dict[str, float]:
    """Print one database's figures; return them by label, for the side-by-side ratios."""
    rounds = result["rounds"]

    def median(kind: str, field: str) -> float:
        return statistics.median(round_[field] for round_ in rounds[kind])

    baseline, events, postbacks = median("baseline", "rate"), median("events", "rate"), median("postbacks", "rate")
    batch, busy_batch = (
        {field: statistics.median(round_[field] for round_ in result[kind]) for field in ("rate", "p50", "requests")}
        for kind in ("batch", "busy_batch")
    )
    errors = sum(round_["errors"] for kind in rounds.values() for round_ in kind)
    errors += sum(round_["errors"] for kind in ("batch", "busy_batch") for round_ in result[kind])
    print(f"-- {name} tables --")
    print(f"{'endpoint':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for label, kind, rate in (
        ("baseline: bare view, one INSERT", "baseline", baseline),
        ("POST /api/v1/events", "events", events),
        ("  app with postbacks", "postbacks", postbacks),
    ):
        print(f"{label:34} {rate:8.0f} {median(kind, 'p50'):8.1f} {median(kind, 'p99'):8.1f}")
    print(f"events API / baseline: {events / baseline:.1%} (target: at least 70 %)")
    print(f"  app with postbacks on installs and purchases / baseline: {postbacks / baseline:.1%}")
    print(
        f"POST /api/v1/events/batch: {batch['rate'] * 1000:.0f} events/s "
        f"({batch['requests']:.0f} requests of 1,000, p50 {batch['p50']:.0f} ms; target: at least 5,000 events/s)"
    )
    print(
        f"  app with postbacks: {busy_batch['rate'] * 1000:.0f} events/s "
        f"({busy_batch['requests']:.0f} requests, p50 {busy_batch['p50']:.0f} ms)"
    )
    print(f"errors: {errors}")
    return {
        "POST /api/v1/events, req/s": events,
        "  its p99 (as empty p99 / prefilled p99)": 1 / median("events", "p99"),
        "  app with postbacks, req/s": postbacks,
        "batch, events/s": batch["rate"],
        "  app with postbacks, events/s": busy_batch["rate"],
    }


if __name__ == "__main__":
    main()
