"""Inserting many rows of one model in one statement, cheaply.

On PostgreSQL the rows travel as one JSON document (`INSERT … SELECT … FROM
jsonb_to_recordset`): json.dumps is C code, while Django's bulk_create prepares every field
of every row in Python and psycopg then adapts each value again (docs/performance.md).
Elsewhere (SQLite) it is bulk_create.
"""

from __future__ import annotations

import functools
import json
import operator
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from django.db import connection, models, transaction
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
    rows = [{name: getattr(instance, model._meta.get_field(name).attname) for name in fields} for instance in objects]
    _update_from_json(model, [instance.pk for instance in objects], [{}] * len(rows), rows)


def rows_update_held(model: type[models.Model], changes: list[tuple[int, dict, dict]]) -> set:
    """For each (primary key, expected, new), each a dict of field names to values (every item
    naming the same fields, expected values never None), write `new` to the row only if it
    still holds `expected`: a row someone else has changed meanwhile is left alone. Returns the
    primary keys of the rows written. One statement on PostgreSQL; on SQLite a read and a write
    per group of like changes, in one transaction."""
    if not changes:
        return set()
    if connection.vendor == "postgresql":
        pks, expected, new = zip(*changes, strict=True)
        return _update_from_json(model, pks, expected, new)
    groups: dict[tuple, list] = {}
    for pk, expected, new in changes:
        groups.setdefault((tuple(sorted(expected.items())), tuple(sorted(new.items()))), []).append(pk)
    held = set()
    with transaction.atomic():
        for (expected, new), pks in groups.items():
            still = list(model.objects.filter(pk__in=pks, **dict(expected)).values_list("pk", flat=True))
            if still:
                model.objects.filter(pk__in=still).update(**dict(new))
                held.update(still)
    return held


def _update_from_json(model: type[models.Model], pks, expected: list[dict], new: list[dict]) -> set:
    """PostgreSQL: one UPDATE of every row, read from one JSON document; returns the keys written."""
    sql, checked, written = _update_sql(model, tuple(sorted(expected[0])), tuple(sorted(new[0])))
    rows = [
        {
            "pk": pk,
            **{f"was_{name}": json_value(was[name]) for name in checked},
            **{name: json_value(values[name]) for name in written},
        }
        for pk, was, values in zip(pks, expected, new, strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(rows)])
        return {pk for (pk,) in cursor.fetchall()}


@functools.cache
def _update_sql(model: type[models.Model], checked: tuple[str, ...], written: tuple[str, ...]):
    quote = connection.ops.quote_name
    fields = model._meta.get_field
    pk = model._meta.pk
    types = [f"pk {pk.db_type(connection)}"]
    types += [f"{quote('was_' + name)} {fields(name).db_type(connection)}" for name in checked]
    types += [f"{quote(name)} {fields(name).db_type(connection)}" for name in written]
    assignments = ", ".join(f"{quote(fields(name).column)} = item.{quote(name)}" for name in written)
    conditions = "".join(f" AND target.{quote(fields(name).column)} = item.{quote('was_' + name)}" for name in checked)
    sql = (
        f"UPDATE {quote(model._meta.db_table)} AS target SET {assignments} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS item({', '.join(types)}) "
        f"WHERE target.{quote(pk.column)} = item.pk{conditions} RETURNING target.{quote(pk.column)}"
    )
    return sql, checked, written


@functools.cache
def rows_source(model: type[models.Model], leave_out: tuple[str, ...] = ()) -> tuple[str, str]:
    """PostgreSQL only: the quoted column list of every concrete field but the primary key and
    the columns left out, and a FROM item reading such rows from one parameter, rows_json's
    (`jsonb_to_recordset(%s::jsonb) AS item(…)`). Worked out once: column types are dear."""
    fields = _fields(model, leave_out)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    types = ", ".join(f"{quote(field.column)} {field.db_type(connection)}" for field in fields)
    return columns, f"jsonb_to_recordset(%s::jsonb) AS item({types})"


@functools.cache
def row_placeholders(model: type[models.Model], leave_out: tuple[str, ...] = ()) -> str:
    """PostgreSQL only: one typed placeholder for each column of rows_source's list, for a
    single row passed as plain parameters (row_parameters): a JSON document is not worth
    parsing for one row."""
    return ", ".join(f"%s::{field.db_type(connection)}" for field in _fields(model, leave_out))


def row_parameters(model: type[models.Model], row: dict, leave_out: tuple[str, ...] = ()) -> list:
    """The parameters of row_placeholders, from a row given by attribute name, whose values
    are already of their fields' Python types (psycopg adapts them; the placeholders' casts
    type them). Not Field.get_db_prep_value: it is slow."""
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
    cannot hold as they are, rather than asking every field of every row (pre_save, json_value)."""
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
    every call (it caches only short ones)."""
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
