"""The tables partitioned by day on PostgreSQL, and their days' creation and expiry
(docs/retention.md#partitions; the SQL is project/partitioning.py's).

- events, by the time they were received, and clicks, by the time of the click: what reads
  them (attribution's lookback, retention, the admin's lists) says which days;
- deliveries by their day-stamped ids, and attempts by their delivery's: a delivery's
  attempts, whenever made, are in the partition of the day the delivery was created, read by
  their delivery's id, and its day of attempts goes with its day of deliveries.

A unique index of a partitioned table must include its partition key, so the rules that span
days are kept in unpartitioned tables of keys: events.EventKey (an app's event_id) and
postbacks.SessionPeriodClaim (SessionBegin's one per period).

A day is dropped when retention's own rule (its `expired` query, the batched deletes' too)
would delete every row of it, or all but a few: those few (an event whose delivery a paused
configuration still holds, say) move to the default partition, where the batched deletes of
postbacks/retention.py take them once they expire. A day with more kept rows is left to them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import OperationalError, connection, models, transaction
from django.db.models import Exists, OuterRef

from events.models import Click, Event
from postbacks.models import Attempt, Delivery
from project import partitioning

logger = logging.getLogger("postbacks.partitions")

# Created ahead by every retention run (daily) and by migrate: a week without a run still
# finds its days. A day nobody created goes to the default partition, never refused.
DAYS_AHEAD = 7


@dataclass(frozen=True)
class PartitionedTable:
    model: type[models.Model]
    key: str  # the partition key's field
    owner: type[models.Model]  # whose rows decide a day's expiry: the model, or what it belongs to
    owner_field: str  # the owner's field the key holds
    owner_column: str  # the model's column holding its owner's id
    # Tables partitioned by this one's keys whose days go with its days (a day's attempts).
    along: tuple[PartitionedTable, ...] = ()

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def by_time(self) -> bool:
        return isinstance(self.model._meta.get_field(self.key), models.DateTimeField)


EVENTS = PartitionedTable(Event, "received_at", Event, "received_at", "id")
CLICKS = PartitionedTable(Click, "clicked_at", Click, "clicked_at", "id")
ATTEMPTS = PartitionedTable(Attempt, "delivery_id", Delivery, "pk", "delivery_id")
DELIVERIES = PartitionedTable(Delivery, "id", Delivery, "pk", "id", along=(ATTEMPTS,))
# A day whose rows are kept but for at most this many is dropped with those few moved to the
# default partition (a paused configuration's held deliveries, say); more are left in place.
MOVED_AT_MOST = 10_000
PARTITIONED = (EVENTS, CLICKS, DELIVERIES, ATTEMPTS)


def partitions_active() -> bool:
    """Whether this database partitions (PostgreSQL, from migration postbacks 0014)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        return partitioning.is_partitioned(cursor, table=EVENTS.table)


def database_today() -> date:
    """The day the database stamps new ids with (its clock, in UTC)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT (now() AT TIME ZONE 'UTC')::date")
        return cursor.fetchone()[0]


def partitions_ensure(*, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Create every partitioned table's days from today to `days_ahead` ahead; their names."""
    if not partitions_active():
        return []
    today = database_today()
    created = []
    for partitioned in PARTITIONED:
        with transaction.atomic(), connection.cursor() as cursor:
            created += partitioning.partitions_ensure(
                cursor, table=partitioned.table, first=today, last=today + timedelta(days=days_ahead)
            )
    if created:
        logger.info("created partitions %s", ", ".join(created))
    return created


def days_drop(
    partitioned: PartitionedTable,
    *,
    expired: models.QuerySet,
    before: date,
    dependents: Callable[[models.QuerySet], None] = lambda gone: None,
    out_of_time: Callable[[], bool] = lambda: False,
) -> int:
    """Drop the partitions of days before `before` in which `expired` (the owner's rows
    retention deletes) holds every row of the owner, or all but MOVED_AT_MOST, which move to
    the default partition; with each, the partitions of its `along` tables its range holds.
    First `dependents(gone)` is called with the owner's expired rows of that day, to delete or
    unlink what refers to them. The count of the owner's rows dropped."""
    if not partitions_active():
        return 0
    with connection.cursor() as cursor:
        days = partitioning.partitions_of(cursor, table=partitioned.table)
        along = {table: partitioning.partitions_of(cursor, table=table.table) for table in partitioned.along}
    limit, _ = partitioning.day_range(before, by_time=partitioned.by_time)
    dropped = 0
    for partition in days:
        if partition.is_default or partition.high > limit or out_of_time():
            continue
        day = {f"{partitioned.owner_field}__lt": partition.high}
        if partition.low is not None:
            day[f"{partitioned.owner_field}__gte"] = partition.low
        going = [(partitioned, partition)] + [
            (table, each) for table, theirs in along.items() for each in theirs if _within(each, partition)
        ]
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                # Locked first, so that what is checked is what goes (lock_timeout: never
                # queued long behind a reader, which would queue every writer behind it).
                cursor.execute(f"SET LOCAL lock_timeout = '{partitioning.LOCK_TIMEOUT}'")
                for _, each in going:
                    cursor.execute(f'LOCK TABLE "{each.name}" IN ACCESS EXCLUSIVE MODE')
                gone = expired.filter(**day)
                owned = partitioned.owner.objects.filter(**day)
                # An anti-join: NOT IN (the expired ids) would be rescanned row by row once
                # the ids outgrow work_mem (a day of the 10-million-event bench took minutes).
                still = owned.exclude(Exists(gone.filter(pk=OuterRef("pk"))))
                kept = list(still.values_list("pk", flat=True)[: MOVED_AT_MOST + 1])
                if len(kept) > MOVED_AT_MOST:
                    continue  # left to the batched deletes
                count = owned.count() - len(kept)
                dependents(gone)
                for table, each in reversed(going):  # what belongs to the owner first
                    partitioning.partition_drop(
                        cursor, table=table.table, partition=each, keep=(table.owner_column, kept)
                    )
        except OperationalError as error:  # a lock not had in time, or a deadlock
            logger.warning("%s not dropped now (%s); the next run tries again", partition.name, error)
            continue
        logger.info(
            "dropped %s (%d rows of %s)",
            ", ".join(each.name for _, each in going),
            count,
            partitioned.owner._meta.label,
        )
        for table, each in going[1:]:
            along[table].remove(each)
        dropped += count
    return dropped


def _within(inner: partitioning.Partition, outer: partitioning.Partition) -> bool:
    """Whether `inner`'s range of keys lies inside `outer`'s (a default partition's in none)."""
    if inner.is_default:
        return False
    above = outer.low is None or (inner.low is not None and inner.low >= outer.low)
    return above and inner.high <= outer.high
