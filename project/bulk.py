"""Inserting many rows of one model in one statement, cheaply.

On PostgreSQL the rows travel as one JSON document (`INSERT … SELECT … FROM
jsonb_to_recordset`): json.dumps is C code, while Django's bulk_create prepares every field
of every row in Python and psycopg then adapts each value again; for a batch of events or
attempts that preparation cost more than the rest of the work (docs/performance.md).
Elsewhere (SQLite) it is bulk_create.
"""

from __future__ import annotations

import functools
import json
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from django.db import connection, models


def rows_insert(model: type[models.Model], objects: list[models.Model]) -> None:
    """Insert `objects` (new, unsaved) and set each one's primary key, in order."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects)
        return
    columns, source = rows_source(model)
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) SELECT {columns} FROM {source} "
        f"RETURNING {quote(model._meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows_json(model, objects)])
        # Rows come back in the order they were given, as Django's own bulk_create assumes.
        for instance, (pk,) in zip(objects, cursor.fetchall(), strict=True):
            saved(instance, pk)


@functools.cache
def rows_source(model: type[models.Model], leave_out: tuple[str, ...] = ()) -> tuple[str, str]:
    """PostgreSQL only: the quoted column list of every concrete field but the primary key and
    the columns left out, and a FROM item reading such rows from one parameter, rows_json's
    (`jsonb_to_recordset(%s::jsonb) AS item(…)`). Worked out once: column types take a
    surprising share of a one-row insert's CPU."""
    fields = _fields(model, leave_out)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    types = ", ".join(f"{quote(field.column)} {field.db_type(connection)}" for field in fields)
    return columns, f"jsonb_to_recordset(%s::jsonb) AS item({types})"


def rows_json(model: type[models.Model], objects: list[models.Model], leave_out: tuple[str, ...] = ()) -> str:
    """The parameter of rows_source's FROM item: `objects` as a JSON array of rows."""
    fields = _fields(model, leave_out)
    return json.dumps(
        [{field.column: json_value(_value_of(instance, field)) for field in fields} for instance in objects]
    )


def saved(instance: models.Model, pk: int) -> None:
    """Mark an instance inserted by hand as the ORM marks one it saved."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias


@functools.cache
def _fields(model: type[models.Model], leave_out: tuple[str, ...]) -> list[models.Field]:
    return [field for field in model._meta.concrete_fields if not field.primary_key and field.column not in leave_out]


def _value_of(instance: models.Model, field: models.Field):
    value = field.pre_save(instance, True)  # fills auto_now(_add) fields, as an insert does
    if value is None and field.is_relation and field.is_cached(instance):
        # Pointing at an object saved after it was assigned (a device created in the same batch).
        related = field.get_cached_value(instance)
        value = related.pk if related is not None else None
        setattr(instance, field.attname, value)  # which forgets the object: keep it, as the ORM does
        field.set_cached_value(instance, related)
    return value


def json_value(value):
    """A field's value as jsonb_to_recordset reads it back into its column type."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    return value
