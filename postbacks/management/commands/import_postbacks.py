import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from postbacks.config_io import ConfigImportError, config_import


class Command(BaseCommand):
    help = "Create or update apps and their postbacks from a JSON file (all or nothing; '-' reads standard input)."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Also delete custom events, partner configurations, trackers and postbacks of the "
            "file's apps that the file does not list.",
        )

    def handle(self, *args, file, prune, **options):
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}.") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"{file} is not valid JSON: {error}.") from None
        try:
            summary = config_import(document=document, prune=prune)
        except ConfigImportError as error:
            raise CommandError(
                f"Nothing was imported; {len(error.problems)} problem(s):\n" + "\n".join(error.problems)
            ) from None
        if not summary.changed:
            self.stdout.write("Nothing to change: the database already matches the file.")
        for verb, items in (("created", summary.created), ("updated", summary.updated), ("deleted", summary.deleted)):
            for item in items:
                self.stdout.write(f"{verb}: {item}")
        for app, key in summary.new_api_keys.items():
            self.stderr.write(f"API key for {app}: {key}  (shown once; stored hashed)")
