from django.core.management.base import BaseCommand, CommandError

from partners.catalogue import CatalogueError, catalogue_sync


class Command(BaseCommand):
    help = "Make the certified partners of partners/catalogue.json match the file (others are left alone)."

    def handle(self, *args, **options):
        try:
            counts = catalogue_sync()
        except CatalogueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Synced {counts['partners']} partners, {counts['fields']} network-specific fields, "
            f"{counts['templates']} event templates."
        )
