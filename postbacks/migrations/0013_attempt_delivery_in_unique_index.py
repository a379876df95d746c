import django.db.models.deletion
from django.db import migrations, models

# The index Django made for the foreign key (its name is the same on every database). Dropped
# by name rather than by AlterField, which on PostgreSQL would also drop and re-add the foreign
# key, checking every attempt again while holding writes to both tables.
INDEX = "postbacks_attempt_delivery_id_d459ee8a"


class Migration(migrations.Migration):
    dependencies = [
        ("postbacks", "0012_attempt_slow_idx"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="attempt",
                    name="delivery",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attempt_log",
                        to="postbacks.delivery",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX "{INDEX}" ON "postbacks_attempt" ("delivery_id")',
                ),
            ],
        ),
    ]
