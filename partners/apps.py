from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PartnersConfig(AppConfig):
    name = "partners"
    verbose_name = "Partners"

    def ready(self) -> None:
        post_migrate.connect(catalogue_load_new, sender=self)


def catalogue_load_new(*, using: str = "default", **kwargs) -> None:
    """After every migrate, the shipped catalogue's partners that the database does not have
    yet (a new database gets all of them). Partners it has keep their edits until
    `manage.py sync_partner_catalogue`. Run here rather than in a data migration, so that the
    catalogue is always loaded through today's models, whatever fields they have gained."""
    from partners.catalogue import catalogue_read, catalogue_sync
    from partners.models import Partner

    known = set(Partner.objects.using(using).values_list("slug", flat=True))
    entries = [entry for entry in catalogue_read() if entry["slug"] not in known]
    if entries:
        catalogue_sync(entries=entries)
