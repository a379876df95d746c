from django.conf import settings
from django.core.management.base import BaseCommand

from postbacks.retention import KINDS, event_keys_kept_days, retention_run, session_claims_kept_days


class Command(BaseCommand):
    help = (
        "Delete now what each kind of data keeps no longer (the *_RETENTION_DAYS settings; docs/retention.md), "
        "as the worker's daily schedule does; --dry-run only counts it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args, dry_run=False, **options):
        run = retention_run(dry_run=dry_run)
        days = {
            "deliveries": f"finished, older than {settings.DELIVERY_RETENTION_DAYS} days",
            "events": f"received over {settings.EVENT_RETENTION_DAYS} days ago",
            "devices": f"no event for {settings.DEVICE_RETENTION_DAYS} days",
            "clicks": f"older than {run.click_days} days",
            "rollup minutes": "the statistics' rollups",
            "event keys": f"what makes a replay a duplicate, kept {event_keys_kept_days()} days",
            "session claims": f"SessionBegin's 24-hour periods sent, kept {session_claims_kept_days()} days",
        }
        verb = "Would delete" if dry_run else "Deleted"
        for kind in KINDS:
            self.stdout.write(f"{verb} {run.counts[kind]} {kind} ({days[kind]}).")
        if run.event_names_filled:
            self.stdout.write(
                f"Stored the event name of {run.event_names_filled} deliveries made before migration postbacks 0015."
            )
