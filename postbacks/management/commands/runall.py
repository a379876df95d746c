"""Run the web server, the django-q2 cluster and the delivery dispatcher together (and, with
--capture-receiver, the receiver POSTBACK_CAPTURE_URL names on this machine), and stop them all
cleanly.

Each child gets its own session, so a Ctrl-C reaches only this command, which then sends
one SIGTERM to each child. (A terminal's SIGINT sent to the whole group reaches django-q2's
worker processes directly and can leave the cluster hanging in its shutdown.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from postbacks.stopping import StopRequest

STOP_GRACE_SECONDS = 20
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class Command(BaseCommand):
    help = (
        "Serve the API and admin (runserver), run the workers (qcluster, under run_workers) and the dispatcher "
        "until interrupted."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument(
            "--capture-receiver",
            action="store_true",
            help="Also run capture_receiver where POSTBACK_CAPTURE_URL points, when that is http on this machine.",
        )

    def handle(self, *args, addrport, capture_receiver, **options):
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        stopping = StopRequest()
        children = {}
        if capture_receiver:
            port = self.capture_port()
            if port is not None:
                children["capture receiver"] = subprocess.Popen(
                    [sys.executable, manage, "capture_receiver", str(port)], start_new_session=True
                )
        children |= {
            "workers": subprocess.Popen([sys.executable, manage, "run_workers"], start_new_session=True),
            "dispatcher": subprocess.Popen([sys.executable, manage, "dispatch_postbacks"], start_new_session=True),
            "web server": subprocess.Popen(
                [sys.executable, manage, "runserver", "--noreload", addrport], start_new_session=True
            ),
        }
        died = None
        try:
            while not stopping and died is None:
                died = next((name for name, child in children.items() if child.poll() is not None), None)
                time.sleep(0.2)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            for child in children.values():
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
        if died is not None:
            raise CommandError(f"The {died} stopped (exit code {children[died].returncode}); stopped the rest too.")

    def capture_port(self) -> int | None:
        """The port to run the capture receiver on, or None (said why) when there is none to run."""
        capture = settings.POSTBACK_CAPTURE_URL
        if not capture:
            self.stdout.write("POSTBACK_CAPTURE_URL is not set: postbacks go to their real destinations.")
            return None
        parts = urlsplit(capture)
        if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS:
            self.stdout.write(f"Postbacks are captured by {capture}, not by a receiver of this machine.")
            return None
        return parts.port or 80
