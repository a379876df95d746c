"""`make run` serves the admin and runs the workers, and Ctrl-C stops everything."""

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


def cluster_running(lines: list[str]) -> bool:
    return any("Q Cluster" in line and "running" in line for line in list(lines))


def test_runall_serves_and_stops_web_server_and_cluster_on_ctrl_c(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DEBUG="true", VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="project.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    runner = subprocess.Popen(
        [sys.executable, "manage.py", "runall", f"127.0.0.1:{port}"],
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
        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=30)
        reader.join(timeout=5)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, "".join(lines)
    leftovers = subprocess.run(["pgrep", "-f", f"runserver --noreload 127.0.0.1:{port}"], capture_output=True)
    assert leftovers.stdout == b""
