"""The settings `make run` leaves in <VAR_DIR>/dev.env, read by manage.py, so that a later
`python manage.py …` on the same machine runs as the demo does (DEBUG with its local secret
key, postbacks captured on 127.0.0.1) without the user knowing those settings.

The file is read only when SECRET_KEY is not set. A configured machine (production, CI, the
tests) sets it; and without it a process that is not in DEBUG refuses to start anyway. So the
file never changes how a process runs that would have run without it. Variables set in the
environment win over the file's.
"""

from __future__ import annotations

import os
from pathlib import Path

DEV_ENV_FILE = "dev.env"


def var_dir(base_dir: Path) -> Path:
    """Where this machine keeps its local state (VAR_DIR, by default var/ of the project)."""
    return Path(os.environ.get("VAR_DIR") or base_dir / "var")


def apply_dev_env(base_dir: Path) -> None:
    if os.environ.get("SECRET_KEY"):
        return
    try:
        lines = (var_dir(base_dir) / DEV_ENV_FILE).read_text().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        name, separator, value = line.strip().partition("=")
        if separator and name and not name.startswith("#"):
            os.environ.setdefault(name.strip(), value.strip())
