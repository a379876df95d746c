"""Daily partitions on PostgreSQL (docs/retention.md#partitions): events by the time they were
received, clicks by the time of the click, attempts by their delivery's id, which becomes
day-stamped (project/partitioning.py). Each table
becomes its own legacy partition in place: nothing is copied, the rows are only read once to
check they belong there (about a second per million rows; the tables are locked meanwhile,
so run this migrate in a quiet hour). Not reversible on PostgreSQL; nothing to do elsewhere.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.migrations.exceptions import IrreversibleError

from project import partitioning

PARTITIONED = (
    ("events_event", "received_at", ("id", "received_at")),
    ("events_click", "clicked_at", ("id", "clicked_at")),
    ("postbacks_attempt", "delivery_id", ("id", "delivery_id")),
)


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        partitioning.ids_day_stamped(cursor, table="postbacks_delivery")
        for table, key, primary_key in PARTITIONED:
            partitioning.partition_by_day(cursor, table=table, key=key, primary_key=primary_key)
            cursor.execute(f'ANALYZE "{table}"')


def irreversible(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        raise IrreversibleError("the tables' daily partitions are not merged back")


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0009_event_keys"),
        ("postbacks", "0013_attempt_delivery_in_unique_index"),
    ]

    operations = [
        # Before the partitioning: a foreign key to a partitioned table would keep its days
        # from being dropped.
        migrations.AlterField(
            model_name="delivery",
            name="event",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="deliveries",
                to="events.event",
            ),
        ),
        migrations.RunPython(partition, irreversible),
    ]
