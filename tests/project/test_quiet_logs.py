"""Quiet by default: the configured logging leaves out a line per django-q2 task and per static
file the development server serves, and keeps everything else (LOG_LEVEL=DEBUG keeps all)."""

import logging
import subprocess
import sys

from tests.product import ROOT


def server_line(request_line: str, status: int) -> logging.LogRecord:
    """A request line as Django's development server logs it (django.core.servers.basehttp)."""
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s %s', (request_line, str(status), "9"), None
    )
    record.status_code = status
    return record


def test_django_q_lines_about_each_task_are_left_out_and_the_cluster_lines_kept(caplog):
    logger = logging.getLogger("django-q")
    with caplog.at_level(logging.INFO):
        logger.info("Enqueued [postbacks] 17")
        logger.info("Process-8af4e8ad605c49c0af30c7199818b13d processing lion-earth 'postbacks.tasks.send_deliveries'")
        logger.info("Processed 'postbacks.tasks.send_deliveries' (lion-earth)")
        logger.info("Process-e8d38dca8edb44c79153fce7f025ba4d ready for work at 11169")
        logger.info("Q Cluster winner-white-moon [postbacks] running.")
        logger.error("Failed 'postbacks.tasks.send_deliveries' (lion-earth) - boom")
    assert [record.getMessage() for record in caplog.records] == [
        "Q Cluster winner-white-moon [postbacks] running.",
        "Failed 'postbacks.tasks.send_deliveries' (lion-earth) - boom",
    ]


def test_the_development_server_logs_no_line_per_static_file():
    handler = next(
        handler for handler in logging.getLogger("django.server").handlers if handler.name == "django.server"
    )
    assert not handler.filter(server_line("GET /static/admin/css/base.css HTTP/1.1", 200))
    assert not handler.filter(server_line("GET /static/admin/js/core.js HTTP/1.1", 304))
    assert handler.filter(server_line("GET /static/admin/css/missing.css HTTP/1.1", 404))
    assert handler.filter(server_line("POST /api/v1/events HTTP/1.1", 202))
    assert handler.filter(server_line("GET /admin/ HTTP/1.1", 200))


PROBE = (
    "import logging\n"
    "q, server = logging.getLogger('django-q'), logging.getLogger('django.server')\n"
    "print(bool(q.filters), bool(server.handlers[0].filters), logging.getLogger('axes.apps').getEffectiveLevel())"
)


def test_log_level_debug_keeps_every_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "x" * 50, "VAR_DIR": str(tmp_path)}
    quiet = subprocess.run([sys.executable, "-c", SETUP + PROBE], cwd=ROOT, env=env, capture_output=True, text=True)
    loud = subprocess.run(
        [sys.executable, "-c", SETUP + PROBE],
        cwd=ROOT,
        env={**env, "LOG_LEVEL": "debug"},
        capture_output=True,
        text=True,
    )
    assert quiet.stdout.split() == ["True", "True", str(logging.WARNING)], quiet.stderr
    assert loud.stdout.split() == ["False", "False", str(logging.INFO)], loud.stderr


SETUP = "import os, django\nos.environ['DJANGO_SETTINGS_MODULE'] = 'project.settings'\ndjango.setup()\n"
