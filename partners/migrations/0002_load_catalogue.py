from django.db import migrations


def load_catalogue(apps, schema_editor):
    from partners.catalogue import catalogue_sync

    catalogue_sync(apps_registry=apps)


class Migration(migrations.Migration):
    dependencies = [("partners", "0001_initial")]

    operations = [migrations.RunPython(load_catalogue, migrations.RunPython.noop)]
