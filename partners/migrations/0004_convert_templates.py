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


def convert(apps, schema_editor):
    template_model = apps.get_model("partners", "PartnerTemplate")
    for template in template_model.objects.all():
        body, query = converted(template.body), converted(template.query)
        if (body, query) != (template.body, template.query):
            template.body, template.query = body, query
            template.save(update_fields=["body", "query"])


class Migration(migrations.Migration):
    dependencies = [("partners", "0003_template_language")]

    operations = [migrations.RunPython(convert, migrations.RunPython.noop)]
