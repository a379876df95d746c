from django.db import migrations, models

# The two partners whose shipped templates follow a measurement partner's public template
# rather than their own documentation (docs/partners/applovin.md, docs/partners/ironsource.md).
PARTLY_ILLUSTRATIVE = {
    "applovin": "AppLovin publishes no reference of its postback format: see docs/partners/applovin.md.",
    "ironsource": "ironSource publishes no reference of its postback API: see docs/partners/ironsource.md.",
}


def forwards(apps, schema_editor):
    partner_model = apps.get_model("partners", "Partner")
    partner_model.objects.filter(illustrative=True).update(documentation="illustrative")
    for slug, note in PARTLY_ILLUSTRATIVE.items():
        partner_model.objects.filter(slug=slug, illustrative=False, illustrative_note="").update(
            documentation="partly_illustrative", illustrative_note=note
        )
        partner_model.objects.filter(slug=slug, illustrative=False).update(documentation="partly_illustrative")


def backwards(apps, schema_editor):
    apps.get_model("partners", "Partner").objects.filter(documentation="illustrative").update(illustrative=True)


class Migration(migrations.Migration):
    dependencies = [("partners", "0005_partner_hints_illustrative")]

    operations = [
        migrations.AddField(
            model_name="partner",
            name="documentation",
            field=models.CharField(
                choices=[
                    ("documented", "Documented by the partner"),
                    ("partly_illustrative", "Partly illustrative (from a measurement partner's public template)"),
                    ("illustrative", "Illustrative (no public format)"),
                ],
                default="documented",
                help_text="Where the templates' wire format comes from. Partly illustrative: the partner publishes no reference, so the format is a measurement partner's public template; illustrative: no public format at all, the templates are a guess to complete with what the partner gives you.",
                max_length=24,
            ),
        ),
        migrations.RunPython(forwards, backwards),
        migrations.RemoveField(model_name="partner", name="illustrative"),
        migrations.AlterField(
            model_name="partner",
            name="illustrative_note",
            field=models.TextField(
                blank=True, help_text="Why the partner is (partly) illustrative, with the sources that were searched."
            ),
        ),
    ]
