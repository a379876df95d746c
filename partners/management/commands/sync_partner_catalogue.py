from django.core.management.base import BaseCommand

from partners.catalogue import catalogue_sync


class Command(BaseCommand):
    help = "Make the certified partners of partners/catalogue.json match the file (others are left alone)."

    def handle(self, *args, **options):
        counts = catalogue_sync()
        self.stdout.write(
            f"Synced {counts['partners']} partners, {counts['fields']} network-specific fields, "
            f"{counts['templates']} event templates."
        )
