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
import operator
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from django.db import connection, models
from psycopg.types.json import Jsonb


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
        alias = connection.alias  # once: the `connection` proxy looks itself up on each use
        for instance, (pk,) in zip(objects, cursor.fetchall(), strict=True):
            saved(instance, pk, alias=alias)


def rows_update(model: type[models.Model], objects: list[models.Model], fields: list[str]) -> None:
    """Write `fields` (names) of saved `objects` in one statement; on PostgreSQL the rows
    travel as one JSON document, as in rows_insert. Elsewhere (SQLite) it is bulk_update."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objects, fields)
        return
    quote = connection.ops.quote_name
    pk = model._meta.pk
    written = [model._meta.get_field(name) for name in fields]
    types = ", ".join(f"{quote(field.column)} {field.db_type(connection)}" for field in [pk, *written])
    assignments = ", ".join(f"{quote(field.column)} = item.{quote(field.column)}" for field in written)
    rows = [
        {field.column: json_value(getattr(instance, field.attname)) for field in [pk, *written]} for instance in objects
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} AS target SET {assignments} "
            f"FROM jsonb_to_recordset(%s::jsonb) AS item({types}) "
            f"WHERE target.{quote(pk.column)} = item.{quote(pk.column)}",
            [json.dumps(rows)],
        )


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


@functools.cache
def row_placeholders(model: type[models.Model], leave_out: tuple[str, ...] = ()) -> str:
    """PostgreSQL only: one typed placeholder for each column of rows_source's list, for a
    single row passed as plain parameters (row_parameters): for one row, parsing a JSON
    document cost PostgreSQL and Python more than the row itself."""
    return ", ".join(f"%s::{field.db_type(connection)}" for field in _fields(model, leave_out))


def row_parameters(model: type[models.Model], row: dict, leave_out: tuple[str, ...] = ()) -> list:
    """The parameters of row_placeholders, from a row given by attribute name, whose values
    are already of their fields' Python types (psycopg adapts them; the placeholders' casts
    type them). Not Field.get_db_prep_value: for one row of events that took 0.1 ms."""
    return [
        Jsonb(row[name]) if is_json and row[name] is not None else row[name]
        for name, is_json in _row_shape(model, leave_out)
    ]


@functools.cache
def _row_shape(model: type[models.Model], leave_out: tuple[str, ...]) -> list[tuple[str, bool]]:
    return [(field.attname, isinstance(field, models.JSONField)) for field in _fields(model, leave_out)]


def rows_json(model: type[models.Model], objects: list[models.Model], leave_out: tuple[str, ...] = ()) -> str:
    """The parameter of rows_source's FROM item: `objects` as a JSON array of rows."""
    columns, read_all, relations, automatic, typed = _json_plan(model, leave_out)
    rows = []
    for instance in objects:
        row = dict(zip(columns, read_all(instance), strict=True))
        for column, field in relations:
            if row[column] is None:
                row[column] = _value_of(instance, field)
        for column, field in automatic:
            row[column] = field.pre_save(instance, True)
        for column in typed:
            row[column] = json_value(row[column])
        rows.append(row)
    return json.dumps(rows)


@functools.cache
def _json_plan(model: type[models.Model], leave_out: tuple[str, ...]):
    """How rows_json reads a model's rows: every attribute at once, then the empty relations
    (which may point at an object saved since), the auto_now fields, and the few values JSON
    cannot hold as they are. Asking every field of every row (pre_save, json_value) was most
    of the cost."""
    fields = _fields(model, leave_out)
    relations = [(field.column, field) for field in fields if field.is_relation]
    automatic = [
        (field.column, field)
        for field in fields
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    ]
    typed = [
        field.column for field in fields if isinstance(field, models.DateField | models.DecimalField | models.UUIDField)
    ]
    read_all = operator.attrgetter(*(field.attname for field in fields))
    if len(fields) == 1:
        read_all = lambda instance, read_one=read_all: (read_one(instance),)  # noqa: E731
    return [field.column for field in fields], read_all, relations, automatic, typed


def instance_from_row(model: type[models.Model], values: list):
    """A model instance from a row of all its concrete columns, read by hand with a cursor:
    converted as the ORM's compiler converts (SQLite returns text for datetimes, say), which
    on PostgreSQL is usually nothing at all."""
    for position, functions, column in _converters(model, connection.vendor):
        value = values[position]
        for function in functions:
            value = function(value, column, connection)
        values[position] = value
    return model.from_db(connection.alias, _attnames(model), values)


@functools.cache
def _attnames(model: type[models.Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


@functools.cache
def _converters(model: type[models.Model], vendor: str) -> list[tuple]:
    converters = []
    for position, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(model._meta.db_table)
        functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if functions:
            converters.append((position, functions, column))
    return converters


def any_of(column: str, values) -> tuple[str, list]:
    """SQL (and its parameters) testing `column` against many values. On PostgreSQL the values
    travel as one array: a query with a thousand placeholders is parsed afresh by psycopg on
    every call (it caches only short ones), which took a tenth of a batch's CPU."""
    values = list(values)
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [values]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


def saved(instance: models.Model, pk: int, *, alias: str | None = None) -> None:
    """Mark an instance inserted by hand as the ORM marks one it saved."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = alias or connection.alias


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
