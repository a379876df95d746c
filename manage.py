#!/usr/bin/env python
import os
import sys
from pathlib import Path

from project.dev_env import apply_dev_env


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    apply_dev_env(Path(__file__).resolve().parent)  # what `make run` set, on a machine without SECRET_KEY
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
