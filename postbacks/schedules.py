"""The worker's own schedule: retention runs daily without a cron line (docs/retention.md).

Created by `migrate` (post_migrate), once: an operator may change its time or turn it off in
the admin (Task queue, Scheduled tasks), and a later migrate leaves that as it is.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.utils import timezone
from django_q.models import Schedule

from postbacks.partitions import partitions_ensure

RETENTION_SCHEDULE = "retention"
RETENTION_TASK = "postbacks.tasks.run_retention"
# Just after midnight UTC: on PostgreSQL what has expired is then nearly all whole days, dropped
# with their partitions, and the batched deletes take only the half hour of the day before the
# cut-off. The first run follows the first migrate at most a day later.
RETENTION_AT = time(0, 30)


def retention_schedule_ensure(*, using: str = "default") -> Schedule:
    """The daily retention schedule, created if it does not exist yet."""
    now = timezone.now()
    first = datetime.combine(now.date(), RETENTION_AT, tzinfo=now.tzinfo)
    if first <= now:
        first += timedelta(days=1)
    schedule, _ = Schedule.objects.using(using).get_or_create(
        name=RETENTION_SCHEDULE,
        defaults={"func": RETENTION_TASK, "schedule_type": Schedule.DAILY, "repeats": -1, "next_run": first},
    )
    return schedule


def schedules_on_migrate(*, using: str = "default", **kwargs) -> None:
    retention_schedule_ensure(using=using)
    # The days ahead exist from the start; the daily run keeps a week ahead.
    partitions_ensure()
