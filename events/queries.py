"""Hand-written SQL of the events app: reads and inserts of rows, no decisions.

Ingestion's hot reads are written as SQL because building the ORM's queries cost more CPU
than running them (docs/performance.md). These functions only fetch or insert what they are
asked for; which device, click or install wins is decided in events/services.py.
"""

from __future__ import annotations

import functools
from datetime import datetime

from django.db import connection

from events.models import Click, Device, DeviceIdentifier, Event, EventKey, Tracker
from project.bulk import (
    any_of,
    instance_from_row,
    row_parameters,
    row_placeholders,
    rows_insert,
    rows_json,
    rows_source,
    saved,
)
from project.partitioning import rows_read_by_generic_plan


def event_pks_stored(*, app_id: int, event_ids: set[str]) -> list[int]:
    """The primary keys of the app's events with any of these event_ids (their keys)."""
    quote = connection.ops.quote_name
    in_event_ids, parameters = any_of(quote("key"), event_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT event_id FROM {quote(EventKey._meta.db_table)} WHERE app_id = %s AND {in_event_ids}",
            [app_id, *parameters],
        )
        return [pk for (pk,) in cursor.fetchall()]


def events_insert(*, events: list[Event]) -> None:
    """Insert new events with their keys and set each one's primary key, in order; an event_id
    whose key is stored raises IntegrityError. On PostgreSQL one statement: the events' rows as
    project/bulk.rows_insert sends them, their keys written from what the insert returns."""
    if not events:
        return
    if connection.vendor != "postgresql":
        rows_insert(Event, events)
        EventKey.objects.bulk_create(
            [EventKey(event.pk, event.app_id, event.event_id, event.received_at) for event in events]
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(_events_insert_sql(), [rows_json(Event, events)])
        alias = connection.alias
        for event, (pk,) in zip(events, cursor.fetchall(), strict=True):
            saved(event, pk, alias=alias)


@functools.cache
def _events_insert_sql() -> str:
    quote = connection.ops.quote_name
    columns, source = rows_source(Event)
    # Rows come back in the order they were given, as Django's own bulk_create assumes.
    return (
        f"WITH event AS (INSERT INTO {quote(Event._meta.db_table)} ({columns}) SELECT {columns} FROM {source} "
        f"RETURNING id, app_id, event_id, received_at){_key_insert_sql()} SELECT id FROM event"
    )


def devices_owning(*, app_id: int, values_by_kind: dict[str, set[str]]) -> list[tuple[str, str, Device]]:
    """(kind, value, device) for each stored identifier among the values; one Device object
    per device, however many of its identifiers match."""
    quote = connection.ops.quote_name
    columns = ", ".join(f"d.{quote(field.column)}" for field in Device._meta.concrete_fields)
    conditions, parameters = [], [app_id]
    for kind, values in values_by_kind.items():
        in_values, value_parameters = any_of("i.value", values)
        conditions.append(f"(i.kind = %s AND {in_values})")
        parameters += [kind, *value_parameters]
    sql = (
        f"SELECT i.kind, i.value, {columns} "
        f"FROM {quote(DeviceIdentifier._meta.db_table)} i "
        f"JOIN {quote(Device._meta.db_table)} d ON d.id = i.device_id "
        f"WHERE i.app_id = %s AND ({' OR '.join(conditions)})"
    )
    pk_at = Device._meta.concrete_fields.index(Device._meta.pk)
    devices: dict[int, Device] = {}
    owned = []
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)
        for kind, value, *device_row in cursor.fetchall():
            device = devices.get(device_row[pk_at])
            if device is None:
                device = devices[device_row[pk_at]] = instance_from_row(Device, device_row)
            owned.append((kind, value, device))
    return owned


def identifiers_of(*, app_id: int, device_ids) -> list[tuple[str, str, int]]:
    """(kind, value, device_id) of every identifier of these devices."""
    in_devices, parameters = any_of("device_id", device_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT kind, value, device_id FROM {connection.ops.quote_name(DeviceIdentifier._meta.db_table)} "
            f"WHERE app_id = %s AND {in_devices}",
            [app_id, *parameters],
        )
        return cursor.fetchall()


def clicks_matching(
    *, app_id: int, values_by_kind: dict[str, set[str]], earliest: datetime, latest: datetime
) -> list[Click]:
    """The app's clicks in [earliest, latest] carrying any of the values, each with its tracker.
    One condition per identifier kind (not per value: SQLite limits expression depth), each
    also saying the id is not empty: the values never are, and only so does PostgreSQL use the
    kind's partial index (Click.Meta) in the generic plan it runs by (one per connection, not a
    plan per install over a week of days), which knows no values; without it, it walked an
    index where nearly every click holds ''."""
    quote = connection.ops.quote_name
    # Adapted as the ORM adapts them: SQLite compares datetimes as text.
    adapt = connection.ops.adapt_datetimefield_value
    conditions, parameters = [], [app_id, adapt(earliest), adapt(latest)]
    for kind, values in values_by_kind.items():
        column = f"c.{quote(Click._meta.get_field(kind).column)}"
        condition, values_parameters = any_of(column, values)
        conditions.append(f"({column} <> '' AND {condition})")
        parameters += values_parameters
    if not conditions:
        return []
    click_fields, tracker_fields = Click._meta.concrete_fields, Tracker._meta.concrete_fields
    columns = ", ".join(
        [f"c.{quote(field.column)}" for field in click_fields]
        + [f"t.{quote(field.column)}" for field in tracker_fields]
    )
    sql = (
        f"SELECT {columns} FROM {quote(Click._meta.db_table)} c "
        f"JOIN {quote(Tracker._meta.db_table)} t ON t.id = c.tracker_id "
        f"WHERE c.app_id = %s AND c.clicked_at >= %s AND c.clicked_at <= %s AND ({' OR '.join(conditions)})"
    )
    with connection.cursor() as cursor:
        rows = rows_read_by_generic_plan(cursor, sql, parameters)
    clicks, trackers = [], {}
    for row in rows:
        click = instance_from_row(Click, list(row[: len(click_fields)]))
        tracker = trackers.get(click.tracker_id)
        if tracker is None:
            tracker = trackers[click.tracker_id] = instance_from_row(Tracker, list(row[len(click_fields) :]))
        Click.tracker.field.set_cached_value(click, tracker)
        clicks.append(click)
    return clicks


def event_insert_for_sole_owner(*, row: dict, device_ids: dict[str, str]) -> tuple[int, int] | None:
    """PostgreSQL only: insert an event row (every column but id and device_id) and its key for
    the one stored device that owns every identifier in device_ids, in one statement; its (id,
    device_id), or None when no single device owns them all. A stored event_id raises
    IntegrityError."""
    parameters = [row["app_id"], *(value for pair in device_ids.items() for value in pair), len(device_ids)]
    parameters += row_parameters(Event, row, ("device_id",))
    with connection.cursor() as cursor:
        cursor.execute(_sole_owner_insert_sql(len(device_ids)), parameters)
        return cursor.fetchone()


@functools.lru_cache(maxsize=8)
def _sole_owner_insert_sql(kinds: int) -> str:
    quote = connection.ops.quote_name
    pairs = " OR ".join(["(kind = %s AND value = %s)"] * kinds)
    columns, _ = rows_source(Event, ("device_id",))
    return (
        f"WITH owner AS (SELECT min(device_id) AS id FROM {quote(DeviceIdentifier._meta.db_table)} "
        f"WHERE app_id = %s AND ({pairs}) HAVING count(*) = %s AND count(DISTINCT device_id) = 1), "
        f"event AS (INSERT INTO {quote(Event._meta.db_table)} ({columns}, device_id) "
        f"SELECT {row_placeholders(Event, ('device_id',))}, owner.id FROM owner "
        f"RETURNING id, device_id, app_id, event_id, received_at){_key_insert_sql()} "
        "SELECT id, device_id FROM event"
    )


@functools.cache
def _key_insert_sql() -> str:
    """The CTE that inserts the key of the event the CTE `event` inserted: its event_id stored
    already fails the whole statement."""
    quote = connection.ops.quote_name
    return (
        f", event_key AS (INSERT INTO {quote(EventKey._meta.db_table)} (event_id, app_id, {quote('key')}, received_at) "
        "SELECT id, app_id, event_id, received_at FROM event)"
    )


def device_insert_with_event(*, device: Device, identifiers: list[DeviceIdentifier], row: dict) -> tuple[int, int]:
    """PostgreSQL only: insert a new device, its identifiers and one event of it (a row of
    every column but id and device_id) with its key, in one statement; the event's (id,
    device_id)."""
    parameters = [rows_json(Device, [device]), rows_json(DeviceIdentifier, identifiers, ("device_id",))]
    parameters += row_parameters(Event, row, ("device_id",))
    with connection.cursor() as cursor:
        cursor.execute(_device_with_event_sql(), parameters)
        return cursor.fetchone()


@functools.cache
def _device_with_event_sql() -> str:
    quote = connection.ops.quote_name
    device_columns, device_source = rows_source(Device)
    id_columns, id_source = rows_source(DeviceIdentifier, ("device_id",))
    event_columns, _ = rows_source(Event, ("device_id",))
    return (
        f"WITH device AS (INSERT INTO {quote(Device._meta.db_table)} ({device_columns}) "
        f"SELECT {device_columns} FROM {device_source} RETURNING id), "
        f"linked AS (INSERT INTO {quote(DeviceIdentifier._meta.db_table)} ({id_columns}, device_id) "
        f"SELECT {id_columns}, device.id FROM {id_source}, device), "
        f"event AS (INSERT INTO {quote(Event._meta.db_table)} ({event_columns}, device_id) "
        f"SELECT {row_placeholders(Event, ('device_id',))}, device.id FROM device "
        f"RETURNING id, device_id, app_id, event_id, received_at){_key_insert_sql()} "
        "SELECT id, device_id FROM event"
    )
