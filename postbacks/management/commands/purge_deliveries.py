from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from postbacks.retention import rollup_retention_days
from postbacks.rollups import rollups_purge
from postbacks.services import deliveries_purge


class Command(BaseCommand):
    help = (
        "Delete finished deliveries and their attempts older than N days (scheduled ones are kept), and the "
        "statistics' rollups older than N days or the statistics' longest window (30 days), whichever is longer."
    )

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
        rollup_days = rollup_retention_days(delivery_days=days)
        minutes = rollups_purge(older_than=timedelta(days=rollup_days))
        self.stdout.write(f"Deleted {minutes} statistics rollup minutes older than {rollup_days} days.")
