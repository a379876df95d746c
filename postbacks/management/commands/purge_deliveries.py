from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from postbacks.services import deliveries_purge


class Command(BaseCommand):
    help = "Delete finished deliveries and their attempts older than N days (scheduled ones are kept)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            metavar="DAYS",
            help="Default: the DELIVERY_RETENTION_DAYS setting.",
        )

    def handle(self, *args, older_than=None, **options):
        days = settings.DELIVERY_RETENTION_DAYS if older_than is None else older_than
        if days < 1:
            raise CommandError("--older-than must be at least 1 day.")
        count = deliveries_purge(older_than=timedelta(days=days))
        self.stdout.write(f"Deleted {count} finished deliveries older than {days} days.")
