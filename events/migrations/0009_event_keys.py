"""Event keys: an app's event_id is unique through its own table, which (unlike the events,
partitioned by day on PostgreSQL from postbacks 0014) spans every day. The keys of the events
received within EVENT_MAX_AGE_DAYS + 1 days are copied: older ones are no longer needed."""

from datetime import timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


def keys_copy(apps, schema_editor):
    quote = schema_editor.quote_name
    since = timezone.now() - timedelta(days=settings.EVENT_MAX_AGE_DAYS + 1)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote('events_eventkey')} (event_id, app_id, {quote('key')}, received_at) "
            f"SELECT id, app_id, event_id, received_at FROM {quote('events_event')} WHERE received_at >= %s",
            [schema_editor.connection.ops.adapt_datetimefield_value(since)],
        )


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0008_click_sparse_id_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventKey",
            fields=[
                (
                    "event",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="key",
                        serialize=False,
                        to="events.event",
                    ),
                ),
                ("key", models.CharField(help_text="The event's event_id.", max_length=128)),
                ("received_at", models.DateTimeField()),
            ],
        ),
        migrations.RemoveConstraint(
            model_name="event",
            name="event_unique_event_id_per_app",
        ),
        migrations.AlterField(
            model_name="device",
            name="install_click",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="events.click",
            ),
        ),
        migrations.AlterField(
            model_name="device",
            name="reengagement_click",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="events.click",
            ),
        ),
        migrations.AddField(
            model_name="eventkey",
            name="app",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="events.app",
            ),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["app", "event_id"], name="event_app_event_id_idx"),
        ),
        migrations.AddConstraint(
            model_name="eventkey",
            constraint=models.UniqueConstraint(fields=("app", "key"), name="event_key_unique"),
        ),
        migrations.RunPython(keys_copy, migrations.RunPython.noop),
    ]
