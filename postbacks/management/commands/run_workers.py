"""The django-q2 cluster under a watchdog: `manage.py qcluster` in a process group of its own,
restarted when it exits or stalls (deliveries due for WORKER_STALL_SECONDS and no attempt
recorded for as long). django-q2 has been seen to hang whole after one worker was killed
(its issue #23); the leases bring back whatever the stalled cluster held."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection

from postbacks.selectors import workers_stalled
from postbacks.stopping import StopRequest

logger = logging.getLogger("postbacks.workers")

CHECK_EVERY = 2.0
STOP_GRACE = 10.0
STALLED_GRACE = 1.0


def _stop_with_parent() -> None:
    """On Linux, the cluster gets SIGTERM if this watchdog dies, even by SIGKILL: no orphan
    cluster keeps running beside the one a restarted watchdog starts."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


class Command(BaseCommand):
    help = "Run the django-q2 cluster (qcluster) and restart it when it exits or stalls, until stopped."

    def handle(self, *args, **options):
        stopping = StopRequest()
        stall = timedelta(seconds=settings.WORKER_STALL_SECONDS)
        cluster = self.start()
        started = time.monotonic()
        while not stopping:
            time.sleep(CHECK_EVERY)
            if stopping:
                break
            if cluster.poll() is not None:
                logger.error("the cluster exited (code %s); starting it again", cluster.returncode)
                cluster, started = self.start(), time.monotonic()
                continue
            if time.monotonic() - started < stall.total_seconds():
                continue  # a new cluster gets the time it is allowed before it is judged
            try:
                stalled = workers_stalled(after=stall)
            except Exception:
                logger.warning("could not check the cluster's progress", exc_info=True)
                connection.close()
                continue
            if stalled:
                logger.error(
                    "the cluster stalled: deliveries due for over %d s and no attempt recorded; restarting it",
                    stall.total_seconds(),
                )
                self.halt(cluster, grace=STALLED_GRACE)  # a hung cluster will not stop cleanly anyway
                cluster, started = self.start(), time.monotonic()
        self.halt(cluster)

    def start(self) -> subprocess.Popen:
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        return subprocess.Popen(
            [sys.executable, manage, "qcluster"], start_new_session=True, preexec_fn=_stop_with_parent
        )

    def halt(self, cluster: subprocess.Popen, grace: float = STOP_GRACE) -> None:
        if cluster.poll() is None:
            os.killpg(cluster.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                cluster.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):  # whatever of the group is left, a hung worker too
            os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()
