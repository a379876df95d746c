import re

from django.db import migrations

# A value made of placeholders alone, glued together ("{adid}{idfa}"), meant "whichever is
# there"; it glued two ids into one garbage value whenever an event carried both.
GLUED = re.compile(r"^(?:\{[a-z_][a-z0-9_.]*\}){2,}$")


def converted(spec):
    """A stored body or query in the template language: glued placeholders become $first."""
    if isinstance(spec, str) and GLUED.match(spec):
        return {"$first": re.findall(r"\{([a-z_][a-z0-9_.]*)\}", spec)}
    if isinstance(spec, dict) and not any(key.startswith("$") for key in spec):
        return {key: converted(value) for key, value in spec.items()}
    return spec


def convert_and_load(apps, schema_editor):
    from partners.catalogue import catalogue_read, catalogue_sync

    template_model = apps.get_model("partners", "PartnerTemplate")
    for template in template_model.objects.all():
        body, query = converted(template.body), converted(template.query)
        if (body, query) != (template.body, template.query):
            template.body, template.query = body, query
            template.save(update_fields=["body", "query"])
    # A new database gets the catalogue here (see 0002); an existing one keeps its partners,
    # edits included, until `manage.py sync_partner_catalogue`.
    partner_model = apps.get_model("partners", "Partner")
    known = set(partner_model.objects.values_list("slug", flat=True))
    catalogue_sync(entries=[entry for entry in catalogue_read() if entry["slug"] not in known], apps_registry=apps)


class Migration(migrations.Migration):
    dependencies = [("partners", "0003_template_language")]

    operations = [migrations.RunPython(convert_and_load, migrations.RunPython.noop)]
