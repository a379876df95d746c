from django.db import migrations


def load_catalogue(apps, schema_editor):
    # The catalogue is now written in the template language (encoding, query, body, headers,
    # reply), which these historical models do not have: 0004 loads it. A database migrated
    # before keeps what this step loaded then, converted by 0004.
    pass


class Migration(migrations.Migration):
    dependencies = [("partners", "0001_initial")]

    operations = [migrations.RunPython(load_catalogue, migrations.RunPython.noop)]
