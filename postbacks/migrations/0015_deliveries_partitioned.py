"""Deliveries partitioned by their day-stamped ids on PostgreSQL, as their attempts are
(docs/retention.md#partitions), so that a day of both is dropped whole. A unique index there
must include the id, so the rules that spanned every delivery go: SessionBegin's one per
period moves to SessionPeriodClaim (the claims still needed are copied from the deliveries),
the delivery UUID keeps a plain index (it is random), and an event's deliveries are made once,
with the event. A new delivery stores its event's name, for the log's filter (read through
the event, it probed every day of events). The table becomes its own legacy partition in place,
as in 0014: its rows are read once, its foreign keys checked again (the table is locked
meanwhile: run this migrate in a quiet hour). Not reversible on PostgreSQL; elsewhere only the
claims and the event's name are new.
"""

from datetime import timedelta

import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models
from django.db.migrations.exceptions import IrreversibleError
from django.utils import timezone

from project import partitioning


def claims_copy(apps, schema_editor):
    """The periods deliveries claimed that an event may still fall in (retention's age for claims)."""
    since = timezone.now() - timedelta(days=settings.EVENT_MAX_AGE_DAYS + 2)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO postbacks_sessionperiodclaim (device_id, configuration_id, period, claimed_at) "
            "SELECT device_id, configuration_id, session_period, created_at FROM postbacks_delivery "
            "WHERE session_period IS NOT NULL AND created_at >= %s ORDER BY created_at, id",
            [since],
        )


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        partitioning.partition_by_day(cursor, table="postbacks_delivery", key="id", primary_key=("id",))
        cursor.execute('ANALYZE "postbacks_delivery"')


def irreversible(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        raise IrreversibleError("the deliveries' daily partitions are not merged back")


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0009_event_keys"),
        ("postbacks", "0014_partitions"),
    ]

    operations = [
        migrations.CreateModel(
            name="SessionPeriodClaim",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("period", models.PositiveIntegerField(help_text="24-hour periods since the install or reengagement.")),
                ("claimed_at", models.DateTimeField()),
            ],
        ),
        migrations.RemoveConstraint(
            model_name="delivery",
            name="delivery_one_per_session_period",
        ),
        migrations.RemoveConstraint(
            model_name="delivery",
            name="delivery_one_per_event",
        ),
        migrations.AlterField(
            model_name="attempt",
            name="delivery",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempt_log",
                to="postbacks.delivery",
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="delivery_id",
            field=models.UUIDField(
                db_index=True,
                default=uuid.uuid4,
                editable=False,
                help_text="Sent on every attempt; receivers deduplicate by it.",
            ),
        ),
        migrations.AddField(
            model_name="sessionperiodclaim",
            name="configuration",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="postbacks.postbackconfiguration"
            ),
        ),
        migrations.AddField(
            model_name="sessionperiodclaim",
            name="device",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="events.device"
            ),
        ),
        migrations.AddConstraint(
            model_name="sessionperiodclaim",
            constraint=models.UniqueConstraint(
                fields=("device", "configuration", "period"), name="session_period_claim_unique"
            ),
        ),
        # Empty (NULL) on the deliveries made before: filling it would write every delivery
        # again (10 million in more than 17 minutes); the filter reads those through their event.
        migrations.AddField(
            model_name="delivery",
            name="event_name",
            field=models.CharField(editable=False, max_length=64, null=True, verbose_name="event"),
        ),
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(fields=["event_name", "id"], name="delivery_event_name_idx"),
        ),
        migrations.RunPython(claims_copy, migrations.RunPython.noop),
        migrations.RunPython(partition, irreversible),
    ]
