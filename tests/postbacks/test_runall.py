"""`make run` serves the admin and runs the workers and a capture receiver, the demo's first
event is delivered to that receiver (nothing leaves 127.0.0.1), Ctrl-C stops everything, and
the output has no line per django-q2 task or per static file."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.product import free_port

ROOT = Path(__file__).resolve().parents[2]


DELIVERED_PROBE = (
    "from postbacks.models import Attempt\n"
    "for attempt in Attempt.objects.filter(outcome='delivered'):\n"
    "    print('delivered', attempt.url, 'captured at', attempt.captured_url)"
)


def cluster_running(lines: list[str]) -> bool:
    return any("Q Cluster" in line and "running" in line for line in list(lines))


def test_runall_serves_delivers_the_demo_to_its_capture_receiver_and_stops_all_on_ctrl_c(tmp_path):
    port, capture_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        # What `make run` sets (Makefile).
        DEBUG="true",
        POSTBACK_ALLOW_PRIVATE_DESTINATIONS="true",
        POSTBACK_CAPTURE_URL=f"http://127.0.0.1:{capture_port}",
        VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="project.settings",
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    demo = subprocess.run(
        [sys.executable, "manage.py", "demo_setup", "--api-url", f"http://127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    curl = next(line.strip() for line in demo.splitlines() if line.strip().startswith("curl "))
    runner = subprocess.Popen(
        [sys.executable, "manage.py", "runall", f"127.0.0.1:{port}", "--capture-receiver"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(runner.stdout), daemon=True)
    reader.start()
    try:
        status = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (status == 200 and cluster_running(lines)):
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=2).status
            except OSError:
                time.sleep(0.3)
        assert status == 200
        assert cluster_running(lines), "".join(lines)
        static = urllib.request.urlopen(f"http://127.0.0.1:{port}/static/admin/css/base.css", timeout=5)
        assert static.status == 200
        # The curl the demo printed, pasted into a shell: the demo's custom install postback
        # (no delay) is delivered to the capture receiver instead of the warehouse it names.
        sent = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        assert "HTTP/1.1 202" in sent.stdout and '"postbacks_scheduled":2' in sent.stdout, sent.stdout + sent.stderr
        captured = "captured GET https://warehouse.demogames.example/ingest/install"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(captured in line for line in list(lines)):
            time.sleep(0.3)
        assert any(captured in line for line in list(lines)), "".join(lines)
        statuses = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", DELIVERED_PROBE], cwd=ROOT, env=env, capture_output=True
        )
        assert b"delivered https://warehouse.demogames.example/ingest/install" in statuses.stdout, statuses
        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=30)
        reader.join(timeout=5)
    finally:
        if runner.poll() is None:
            # A failed check: stop runall as Ctrl-C does, so its children (each in a session of
            # its own) do not outlive the test; kill it only if that does not work.
            runner.send_signal(signal.SIGINT)
            try:
                runner.wait(timeout=30)
            except subprocess.TimeoutExpired:
                runner.kill()
    assert runner.returncode == 0, "".join(lines)
    # Quiet by default: a line for the request the curl made and for what was captured, but
    # none for the static file, for each django-q2 task, or for django-axes starting.
    output = "".join(lines)
    assert '"POST /api/v1/events HTTP/1.1" 202' in output
    for routine in ("/static/", "Enqueued [", "Processed '", " processing ", "ready for work", "AXES: BEGIN"):
        assert routine not in output, routine
    for child in (f"runserver --noreload 127.0.0.1:{port}", f"capture_receiver {capture_port}"):
        leftovers = subprocess.run(["pgrep", "-f", child], capture_output=True)
        assert leftovers.stdout == b"", child
