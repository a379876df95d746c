"""After `make run`, `python manage.py …` works without DEBUG in the environment: it reads the
settings make run left in VAR_DIR/dev.env, and only where SECRET_KEY is not set."""

import os
import subprocess
import sys

from tests.product import ROOT, manage


def test_manage_py_works_after_make_run_without_debug_in_the_environment(tmp_path):
    unset = (
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "DEBUG",
        "POSTBACK_CAPTURE_URL",
        "POSTBACK_ALLOW_PRIVATE_DESTINATIONS",
    )
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update(VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="project.settings")
    probe = (
        "from django.conf import settings\n"
        "print(settings.DEBUG, repr(settings.POSTBACK_CAPTURE_URL), settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS)"
    )
    # Without make run's file, a machine without SECRET_KEY refuses to start, as before.
    refused = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "SECRET_KEY is not set" in refused.stderr
    subprocess.run(["make", "-s", "dev-env", f"VAR_DIR={tmp_path}", "CAPTURE_PORT=8765"], cwd=ROOT, env=env, check=True)
    assert manage(env, "shell", "-v0", "-c", probe).split() == ["True", "'http://127.0.0.1:8765'", "True"]
    # What the environment sets wins over the file.
    assert manage({**env, "POSTBACK_CAPTURE_URL": ""}, "shell", "-v0", "-c", probe).split() == ["True", "''", "True"]
    # A configured machine (it sets SECRET_KEY) does not read the file at all.
    configured = {**env, "SECRET_KEY": "a-configured-machine-" + "x" * 40}
    assert manage(configured, "shell", "-v0", "-c", probe).split() == ["False", "''", "False"]
