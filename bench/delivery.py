"""Benchmark of delivery: the real pipeline (PostgreSQL, Redis broker, dispatcher, django-q2
workers, every attempt logged) against a fast local receiver, beside a bare requests loop.

    .venv/bin/python bench/delivery.py [--deliveries 10000] [--rounds 3] [--rate 200] [--seconds 15]
                                       [--prefill 10000000]

Prints, in one run:
  ceiling     a bare requests.Session loop to the same receiver (the HTTP client's own rate)
  throughput  postbacks delivered per second, draining a backlog of --deliveries
  slow host   the same while 10 % more deliveries go to a destination that hangs 10 s
              (both alternated for --rounds rounds; the medians are reported)
  latency     API 202 → arrival at the receiver, at --rate events/s of real-time postbacks
Targets (docs/performance.md): ≥ 1,000/s; slow host costs ≤ 20 %; real-time p99 < 1 s.
With --prefill N the same rounds alternate with a second database prefilled by bench/prefill.py
with N events (their devices, clicks, deliveries and attempts), and each figure at size is
printed beside the empty-table one (target: within 10 %).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ingest import PYTHON, ROOT, django_env, free_port, scratch_database


def shell(env, script: str) -> str:
    return subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def start(env, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, *args], cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop(*processes) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def arrivals(log: Path) -> list[tuple[float, str]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [(float(stamp), path) for stamp, path in (line.split(" ", 1) for line in lines)]


def forget_slow_deliveries(database_url: str) -> None:
    """The hanging host's backlog would otherwise be retried during the next measurement."""
    with psycopg.connect(database_url) as connection:
        slow = "SELECT id FROM postbacks_delivery WHERE url LIKE '%/slow%'"
        connection.execute(f"DELETE FROM postbacks_attempt WHERE delivery_id IN ({slow})")
        connection.execute("DELETE FROM postbacks_delivery WHERE url LIKE '%/slow%'")


def ceiling(url: str, seconds: float = 5) -> float:
    session = requests.Session()
    count, deadline = 0, time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < deadline:
        session.get(url, params={"event_id": f"ceiling-{count}"}, timeout=5)
        count += 1
    return count / (time.monotonic() - started)


def drain(env, database_url: str, spec: dict, log: Path, prefix: str) -> float:
    """Ingest a backlog with the workers stopped, then start them and time the drain."""
    spec_file = Path(tempfile.mkstemp(suffix=".json")[1])
    spec_file.write_text(json.dumps(spec))
    shell(env, f"from bench.delivery_setup import load; load({str(spec_file)!r})")
    with psycopg.connect(database_url, autocommit=True) as connection:
        # A long-running database has statistics (autovacuum); a freshly loaded one not yet.
        connection.execute("ANALYZE")
    expected = sum(app["events"] for app in spec["apps"] if "/slow" not in app["url"])
    round_tag = f"-{spec['round']}-"  # event ids are <app>-<round>-<n>
    cluster, dispatcher = start(env, "manage.py", "qcluster"), start(env, "manage.py", "dispatch_postbacks")
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            fast = [stamp for stamp, path in arrivals(log) if path.startswith(prefix) and round_tag in path]
            if len(fast) >= expected:
                break
            time.sleep(0.5)
    finally:
        stop(dispatcher, cluster)
    fast.sort()
    return (len(fast) - 1) / (fast[-1] - fast[0]) if len(fast) > 1 else 0.0


def latency(
    env, port_api: int, key: str, rate: float, seconds: float, log: Path, tag: str = ""
) -> tuple[float, float, int]:
    web = start(env, "-m", "gunicorn", "project.wsgi", "-w", "2", "-b", f"127.0.0.1:{port_api}")
    cluster, dispatcher = start(env, "manage.py", "qcluster"), start(env, "manage.py", "dispatch_postbacks")
    accepted: dict[str, float] = {}
    try:
        time.sleep(4)  # let every process start
        interval, next_send = 1 / rate, time.monotonic()
        for number in range(int(rate * seconds)):
            next_send += interval
            body = json.dumps(
                {"event_id": f"live{tag}-{number}", "event": "purchase", "device": {"device_id": f"x{number}"}}
            )
            connection = http.client.HTTPConnection("127.0.0.1", port_api, timeout=10)
            connection.request(
                "POST", "/api/v1/events", body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            )
            if connection.getresponse().status == 202:
                accepted[f"live{tag}-{number}"] = time.time()
            connection.close()
            time.sleep(max(0.0, next_send - time.monotonic()))
        time.sleep(5)
    finally:
        stop(dispatcher, cluster, web)
    arrived = {path.split("event_id=")[1]: stamp for stamp, path in arrivals(log) if f"event_id=live{tag}-" in path}
    waits = sorted(arrived[event_id] - at for event_id, at in accepted.items() if event_id in arrived)
    if not waits:
        return float("nan"), float("nan"), 0
    return statistics.median(waits), waits[min(len(waits) - 1, int(len(waits) * 0.99))], len(accepted) - len(waits)


def database(args, name: str, cluster: str, *, prefill_events: int, base: str, slow_base: str) -> dict:
    """A scratch database and the environment of the processes using it; prefilled by
    bench/prefill.py with `prefill_events` (for the bench's apps, created first) if asked, or
    the one an earlier run prefilled (--reuse-prefilled)."""
    reuse = prefill_events and args.reuse_prefilled
    database_url = (
        urlsplit(args.server)._replace(path=f"/{name}").geturl() if reuse else scratch_database(args.server, name)
    )
    env = django_env(database_url)
    env.update(REDIS_URL=args.redis, Q_CLUSTER_NAME=cluster, POSTBACK_ALLOW_PRIVATE_DESTINATIONS="true")
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    if reuse:
        from bench.prefill import sizes

        with psycopg.connect(database_url, autocommit=True) as connection:
            for app, url in (("Fast", base + "/fast"), ("Slow", slow_base + "/slow")):  # this run's receivers
                connection.execute(
                    "UPDATE postbacks_postbackconfiguration c SET destination_url = %s FROM events_app a "
                    "WHERE a.id = c.app_id AND a.name = %s",
                    [url, app],
                )
        print(f"(reused: {sizes(database_url)})", flush=True)
    elif prefill_events:
        from bench.prefill import prefill, sizes

        apps = [
            {"name": "Fast", "url": base + "/fast", "events": 0},
            {"name": "Slow", "url": slow_base + "/slow", "events": 0},
        ]
        spec_file = Path(tempfile.mkstemp(suffix=".json")[1])
        spec_file.write_text(json.dumps({"round": 0, "apps": apps}))
        shell(env, f"from bench.delivery_setup import load; load({str(spec_file)!r})")
        started = time.monotonic()
        prefill(database_url, events=prefill_events)
        print(f"(prefilled in {time.monotonic() - started:,.0f} s: {sizes(database_url)})", flush=True)
    return {"url": database_url, "env": env}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3, help="drains of each kind, alternated; medians reported")
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
        help="with --prefill: measure the prefilled database an earlier run left (postbacks_bench_delivery_size)",
    )
    args = parser.parse_args()
    run = int(time.time()) % 100_000  # in event ids: a reused database holds an earlier run's

    log = Path(tempfile.mkstemp(suffix=".log")[1])
    port = free_port()
    env = django_env("")
    receiver = start(env, "bench/receiver.py", str(port), str(log))
    # The hanging destination is another partner: another host:port, as in real life (the
    # per-destination limit applies to host:port).
    slow_port = free_port()
    slow_receiver = start(env, "bench/receiver.py", str(slow_port), str(log))
    base = f"http://127.0.0.1:{port}"
    slow_base = f"http://127.0.0.1:{slow_port}"
    places = {"empty": ("postbacks_bench_delivery", "benchdelivery", 0)}
    if args.prefill:
        places["prefilled"] = ("postbacks_bench_delivery_size", "benchdeliverysize", args.prefill)
    figures = {}
    try:
        databases = {
            label: database(args, name, cluster, prefill_events=events, base=base, slow_base=slow_base)
            for label, (name, cluster, events) in places.items()
        }
        time.sleep(1)
        client_ceiling = ceiling(base + "/ceiling")
        print(f"(ceiling {client_ceiling:.0f}/s)", flush=True)
        fast_rates = {label: [] for label in databases}
        slow_rates = {label: [] for label in databases}
        for number in range(args.rounds):  # alternate, so drift on a shared machine hits both alike
            for offset, (label, db) in enumerate(databases.items()):
                # Rounds numbered apart per database: the receiver's one log tells them apart.
                fast_round = run * 1000 + 100 * offset + 2 * number + 1
                slow_round = fast_round + 1
                fast_rates[label].append(
                    drain(
                        db["env"],
                        db["url"],
                        {
                            "round": fast_round,
                            "apps": [{"name": "Fast", "url": base + "/fast", "events": args.deliveries}],
                        },
                        log,
                        "/fast",
                    )
                )
                slow_rates[label].append(
                    drain(
                        db["env"],
                        db["url"],
                        {
                            "round": slow_round,
                            "apps": [
                                {"name": "Fast", "url": base + "/fast", "events": args.deliveries},
                                {"name": "Slow", "url": slow_base + "/slow", "events": args.deliveries // 10},
                            ],
                        },
                        log,
                        "/fast",
                    )
                )
                print(
                    f"({label}, round {number + 1}: {fast_rates[label][-1]:.0f}/s, "
                    f"with a slow host {slow_rates[label][-1]:.0f}/s)",
                    flush=True,
                )
                forget_slow_deliveries(db["url"])
        for label, db in databases.items():
            key = shell(
                db["env"],
                "from events.models import App; from events.services import app_issue_api_key; "
                "print(app_issue_api_key(app=App.objects.get(name='Fast')))",
            ).split()[-1]
            p50, p99, lost = latency(db["env"], free_port(), key, args.rate, args.seconds, log, tag=f"{label}{run}")
            throughput, with_slow = statistics.median(fast_rates[label]), statistics.median(slow_rates[label])
            figures[label] = {"throughput": throughput, "with_slow": with_slow, "p50": p50, "p99": p99, "lost": lost}
    finally:
        stop(receiver, slow_receiver)
    print(
        f"PostgreSQL, Redis broker, {env.get('Q_WORKERS', '2')} django-q2 workers, 1 dispatcher; {os.cpu_count()} cores"
    )
    print(f"bare requests.Session loop (client ceiling):        {client_ceiling:8.0f} requests/s")
    for label, figure in figures.items():
        if len(figures) > 1:
            print(f"-- {label} tables --")
        print(
            f"(medians of {args.rounds} rounds: {', '.join(f'{rate:.0f}' for rate in fast_rates[label])} and "
            f"{', '.join(f'{rate:.0f}' for rate in slow_rates[label])} postbacks/s)"
        )
        throughput, with_slow = figure["throughput"], figure["with_slow"]
        text = f"pipeline, {args.deliveries} deliveries, attempts logged:"
        print(f"{text:51} {throughput:8.0f} postbacks/s  (target >= 1,000)")
        change = (with_slow / throughput - 1) * 100 if throughput else float("nan")
        text = "same, with 10 % to a destination hanging 10 s:"
        print(f"{text:51} {with_slow:8.0f} postbacks/s  ({change:+.0f} %; target >= -20 %)")
        print(
            f"real time at {args.rate:.0f} events/s: API 202 -> arrival p50 {figure['p50'] * 1000:.0f} ms, "
            f"p99 {figure['p99'] * 1000:.0f} ms (target p99 < 1,000 ms); not arrived: {figure['lost']}"
        )
    if args.prefill:
        empty, full = figures["empty"], figures["prefilled"]
        print(f"prefilled / empty ({args.prefill:,} events; target: every figure within 10 %):")
        print(f"  throughput {full['throughput'] / empty['throughput']:.1%}")
        print(f"  with a slow host {full['with_slow'] / empty['with_slow']:.1%}")
        print(f"  real-time p99 {full['p99'] * 1000:.0f} ms against {empty['p99'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
