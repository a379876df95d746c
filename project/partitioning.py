"""Daily partitions of large append-only tables, on PostgreSQL (docs/retention.md#partitions).

A table is partitioned by range of one column, a day per partition, by either:

- a time (timestamptz): a day is [midnight, next midnight) UTC;
- a *day-stamped id* (bigint): the UTC day the row was made (days since 1970-01-01) in the
  high bits, a sequence number in the low 32, from the SQL function day_stamped_id(), the
  id's default. A day is then one range of ids, [day << 32, (day + 1) << 32), so a table can
  be partitioned by another table's id (an attempt by its delivery's) and go with its day.

Each partitioned table has, besides its days: a *legacy* partition holding the rows it had
before it was partitioned (every key below its first day), and a *default* partition for a
day nobody created ahead: rows are never refused; that day's partition is then not created,
and its rows are deleted in batches when they expire. A day is dropped whole, which returns
its space at once and leaves nothing for VACUUM.

Nothing here knows the app's tables: the callers say which are partitioned and by what.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from psycopg.pq import TransactionStatus

logger = logging.getLogger("project.partitioning")

DAY_BITS = 32
EPOCH = date(1970, 1, 1)
# Creating or dropping a partition takes a short exclusive lock on its table: waiting behind a
# long query would queue every insert behind it, so it gives up quickly and tries again later.
LOCK_TIMEOUT = "2s"

# `stamped_at`: the day to stamp; a row's default is today (the start of its transaction).
DAY_STAMPED_ID_SQL = f"""
CREATE OR REPLACE FUNCTION day_stamped_id(sequence regclass, stamped_at timestamptz DEFAULT now())
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $$
    SELECT (floor(extract(epoch FROM stamped_at) / 86400)::bigint << {DAY_BITS})
        | (nextval(sequence) & {(1 << DAY_BITS) - 1})
$$"""

_BOUNDS = re.compile(r"FOR VALUES FROM \((?:'([^']*)'|(-?\d+)|MINVALUE)\) TO \((?:'([^']*)'|(-?\d+))\)")

Bound = int | datetime


@dataclass(frozen=True)
class Partition:
    """One partition: its day (None for the legacy and default ones) and its range [low, high)
    of keys (low None: from the lowest; both None: the default partition)."""

    name: str
    day: date | None
    low: Bound | None
    high: Bound | None

    @property
    def is_default(self) -> bool:
        return self.high is None


def rows_read_by_generic_plan(cursor, sql: str, parameters: list) -> list[tuple]:
    """Run a read of partitioned tables repeated with other values, and fetch its rows. On
    PostgreSQL, where psycopg prepares statements, it runs by the statement's generic plan,
    which prunes the days at run time: made at each run until psycopg prepares it (after
    prepare_threshold runs of a connection), then kept with it. PostgreSQL would otherwise
    plan it afresh at each run: it estimates the generic plan over every day kept and prefers
    custom plans, whose planning over a week of days (1-2 ms) costs ten times their run.
    Without prepared statements or with a connection per request, a generic plan (3-25 ms)
    would be made for a run or a few: then as usual."""
    db = cursor.db
    if db.vendor != "postgresql" or db.connection.prepare_threshold is None or db.settings_dict["CONN_MAX_AGE"] == 0:
        cursor.execute(sql, parameters)
        return cursor.fetchall()
    cursor.execute("SET plan_cache_mode = force_generic_plan")
    try:
        cursor.execute(sql, parameters)
        return cursor.fetchall()
    finally:
        # A failed statement in a transaction: its rollback undoes the SET, and nothing runs before.
        if db.connection.info.transaction_status != TransactionStatus.INERROR:
            cursor.execute("RESET plan_cache_mode")


def day_range(day: date, *, by_time: bool) -> tuple[Bound, Bound]:
    """The keys of `day`, [low, high): midnights UTC, or day-stamped ids."""
    if by_time:
        low = datetime.combine(day, time(), tzinfo=UTC)
        return low, low + timedelta(days=1)
    low = (day - EPOCH).days << DAY_BITS
    return low, low + (1 << DAY_BITS)


def day_of(key: Bound) -> date:
    if isinstance(key, datetime):
        return key.astimezone(UTC).date()
    return EPOCH + timedelta(days=key >> DAY_BITS)


def is_partitioned(cursor, *, table: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [table])
    return cursor.fetchone() is not None


def partitions_of(cursor, *, table: str) -> list[Partition]:
    """The table's partitions, oldest first, the default one last."""
    # Bounds of times read in the session's time zone: Django's connections are in UTC.
    cursor.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        [table],
    )
    partitions = []
    for name, bound in cursor.fetchall():
        if bound == "DEFAULT":
            partitions.append(Partition(name, None, None, None))
            continue
        low_time, low_id, high_time, high_id = _BOUNDS.fullmatch(bound).groups()
        low = _bound(low_time, low_id)
        high = _bound(high_time, high_id)
        partitions.append(Partition(name, None if low is None else day_of(low), low, high))
    return sorted(partitions, key=lambda p: (p.is_default, p.day or date.min))


def partitions_ensure(cursor, *, table: str, first: date, last: date) -> list[str]:
    """Create the table's missing daily partitions from `first` to `last`; their names. A day
    whose rows are already in the default partition is left to it (logged): its partition
    could not be created without moving them. A day the legacy partition covers is skipped."""
    existing = partitions_of(cursor, table=table)
    key, by_time = _key_of(cursor, table)
    legacy_end = next((p.high for p in existing if p.low is None and not p.is_default), None)
    days = {partition.day for partition in existing}
    default = next((partition.name for partition in existing if partition.is_default), None)
    created = []
    day = first
    while day <= last:
        low, high = day_range(day, by_time=by_time)
        if day in days or (legacy_end is not None and low < legacy_end):
            pass
        elif default is not None and _holds(cursor, default, key=key, low=low, high=high):
            logger.warning("%s: rows of %s are in its default partition; that day stays there", table, day)
        else:
            created.append(_partition_create(cursor, table=table, day=day, low=low, high=high))
        day += timedelta(days=1)
    return created


def partition_drop(cursor, *, table: str, partition: Partition, keep: tuple[str, list] = ("", [])) -> None:
    """Drop one partition with its rows, but those whose column `keep[0]` holds one of the values
    `keep[1]`: they move to the default partition (the day's range then has no other), so a few
    rows still kept do not keep a whole day. Inside a transaction: the table is locked from the
    detaching on, the kept rows set aside before it."""
    quote = _quote
    column, values = keep
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    if values:
        cursor.execute(f"CREATE TEMPORARY TABLE kept_rows (LIKE {quote(partition.name)}) ON COMMIT DROP")
        # A join, not `= ANY(%s)`: that compares every row with every value (a day of events
        # with 3,000 kept took 10 s).
        cursor.execute(
            f"INSERT INTO kept_rows SELECT * FROM {quote(partition.name)} "
            f"WHERE {quote(column)} IN (SELECT unnest(%s::bigint[]))",
            [values],
        )
    cursor.execute(f"ALTER TABLE {quote(table)} DETACH PARTITION {quote(partition.name)}")
    if values:
        cursor.execute(f"INSERT INTO {quote(table)} SELECT * FROM kept_rows")
        cursor.execute("DROP TABLE kept_rows")
    cursor.execute(f"DROP TABLE {quote(partition.name)}")


def ids_day_stamped(cursor, *, table: str) -> None:
    """Give `table`'s id column day-stamped values from now on (its rows keep theirs)."""
    cursor.execute(DAY_STAMPED_ID_SQL)
    cursor.execute(f"ALTER TABLE {_quote(table)} ALTER COLUMN id DROP IDENTITY IF EXISTS")
    _id_sequence(cursor, table=table, default="day_stamped_id('{}')")


def _id_sequence(cursor, *, table: str, default: str, start: int = 1) -> None:
    """`table`'s id from a sequence of its own from `start` on (found by pg_get_serial_sequence,
    so Django's flush resets it), its default `default` formatted with the sequence's name."""
    quote = _quote
    sequence = f"{table}_id_seq"
    cursor.execute(f"DROP SEQUENCE IF EXISTS {quote(sequence)}")
    cursor.execute(f"CREATE SEQUENCE {quote(sequence)} AS bigint START {int(start)} OWNED BY {quote(table)}.id")
    cursor.execute(f"ALTER TABLE {quote(table)} ALTER COLUMN id SET DEFAULT {default.format(sequence)}")


def partition_by_day(cursor, *, table: str, key: str, primary_key: tuple[str, ...]) -> None:
    """Turn `table` into one partitioned by day of `key` (a time, or a day-stamped id), in
    place: the table becomes its legacy partition (no row is copied, they are only read to
    check they belong there; an empty table has none), its indexes and constraints become the
    partitioned table's, and a default partition is added; the days are the caller's to make.
    `primary_key` must include `key`. The id column keeps its numbering, from a sequence
    (PostgreSQL 15 has no identity columns on partitioned tables)."""
    quote = _quote
    legacy = f"{table}_legacy"
    indexes = _indexes_of(cursor, table)
    foreign_keys = _foreign_keys_of(cursor, table)
    cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(legacy)}")
    wanted = f"PRIMARY KEY ({', '.join(primary_key)})"
    for index in indexes:
        renamed = f"{index.name[:55]}_legacy"
        if index.primary and index.definition != wanted:
            # Another primary key: the partitioned table's is built on the legacy rows instead.
            cursor.execute(f"ALTER TABLE {quote(legacy)} DROP CONSTRAINT {quote(index.name)}")
        elif index.constraint:
            cursor.execute(f"ALTER TABLE {quote(legacy)} RENAME CONSTRAINT {quote(index.name)} TO {quote(renamed)}")
        else:
            cursor.execute(f"ALTER INDEX {quote(index.name)} RENAME TO {quote(renamed)}")
    # Ids go on after the highest ever given (the identity's sequence), not only the highest
    # left; day-stamped ones keep their sequence's count (their low bits).
    cursor.execute(
        "SELECT coalesce(pg_get_expr(d.adbin, d.adrelid) LIKE 'day_stamped_id(%%', false) FROM pg_attribute a "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = 'id'",
        [legacy],
    )
    (day_stamped,) = cursor.fetchone()
    highest = "0" if day_stamped else "max(id)"
    cursor.execute(
        f"SELECT count(*) = 0, greatest({highest}, pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')), 0) + 1 "
        f"FROM {quote(legacy)}",
        [legacy],
    )
    (empty, next_id) = cursor.fetchone()
    cursor.execute(f"ALTER TABLE {quote(legacy)} ALTER COLUMN id DROP IDENTITY IF EXISTS")
    cursor.execute(f"ALTER TABLE {quote(legacy)} ALTER COLUMN id DROP DEFAULT")
    cursor.execute(
        f"CREATE TABLE {quote(table)} (LIKE {quote(legacy)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        f"INCLUDING STORAGE) PARTITION BY RANGE ({quote(key)})"
    )
    default = "day_stamped_id('{}')" if day_stamped else "nextval('{}')"
    _id_sequence(cursor, table=table, default=default, start=next_id)
    # The legacy rows end with today (the database's), or later for a row stamped ahead; keys
    # not stamped yet (ids becoming day-stamped now) end before today's.
    _, by_time = _key_of(cursor, table)
    cursor.execute("SELECT (now() AT TIME ZONE 'UTC')::date")
    (today,) = cursor.fetchone()
    cursor.execute(f"SELECT max({quote(key)}) FROM {quote(legacy)}")
    (latest,) = cursor.fetchone()
    last = day_of(latest) if latest is not None else date.min
    if by_time or last >= today:
        _, end = day_range(max(today, last), by_time=by_time)
    else:
        end, _ = day_range(today, by_time=False)  # new ids are stamped today on
    cursor.execute(
        f"ALTER TABLE {quote(table)} ATTACH PARTITION {quote(legacy)} FOR VALUES FROM (MINVALUE) TO ({_literal(end)})"
    )
    columns = ", ".join(quote(column) for column in primary_key)
    cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(table + '_pkey')} PRIMARY KEY ({columns})")
    for index in indexes:
        if index.primary:
            continue
        if index.constraint:  # PostgreSQL takes the legacy partition's matching index
            cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(index.name)} {index.definition}")
        else:  # read before the renaming: it names the table and index as they are named again
            cursor.execute(index.definition)
    for name, definition in foreign_keys:
        cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
    cursor.execute(f"CREATE TABLE {quote(table + '_default')} PARTITION OF {quote(table)} DEFAULT")
    if empty:  # it had no rows: days from today on, with no legacy partition before them
        cursor.execute(f"ALTER TABLE {quote(table)} DETACH PARTITION {quote(legacy)}")
        cursor.execute(f"DROP TABLE {quote(legacy)}")


@dataclass(frozen=True)
class _Index:
    name: str
    definition: str  # CREATE INDEX …, or the constraint's definition (UNIQUE (…))
    constraint: bool
    primary: bool


def _partition_create(cursor, *, table: str, day: date, low: Bound, high: Bound) -> str:
    quote = _quote
    name = f"{table}_d{day:%Y%m%d}"
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    # Bounds written out: a statement of DDL takes no parameters when they are bound by the server.
    cursor.execute(
        f"CREATE TABLE {quote(name)} PARTITION OF {quote(table)} "
        f"FOR VALUES FROM ({_literal(low)}) TO ({_literal(high)})"
    )
    # Its indexes named after the table's, so that a plan reads like one of the whole table.
    cursor.execute(
        "SELECT child.relname, parent.relname FROM pg_index x JOIN pg_class child ON child.oid = x.indexrelid "
        "JOIN pg_inherits i ON i.inhrelid = x.indexrelid JOIN pg_class parent ON parent.oid = i.inhparent "
        "WHERE x.indrelid = to_regclass(%s) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
        [name],
    )
    for child, parent in cursor.fetchall():
        cursor.execute(f"ALTER INDEX {quote(child)} RENAME TO {quote(f'{parent[:53]}_d{day:%Y%m%d}')}")
    return name


def _indexes_of(cursor, table: str) -> list[_Index]:
    cursor.execute(
        "SELECT i.relname, coalesce(pg_get_constraintdef(c.oid), pg_get_indexdef(i.oid)), c.oid IS NOT NULL, "
        "x.indisprimary FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.contype IN ('p', 'u') "
        "WHERE x.indrelid = to_regclass(%s)",
        [table],
    )
    return [_Index(*row) for row in cursor.fetchall()]


def _foreign_keys_of(cursor, table: str) -> list[tuple[str, str]]:
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) "
        "AND contype = 'f'",
        [table],
    )
    return cursor.fetchall()


def _key_of(cursor, table: str) -> tuple[str, bool]:
    """The partition key's column, and whether it is a time."""
    cursor.execute(
        "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_partitioned_table p "
        "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
        "WHERE p.partrelid = to_regclass(%s)",
        [table],
    )
    column, kind = cursor.fetchone()
    return column, kind.startswith("timestamp")


def _holds(cursor, partition: str, *, key: str, low: Bound, high: Bound) -> bool:
    quote = _quote
    cursor.execute(
        f"SELECT 1 FROM {quote(partition)} WHERE {quote(key)} >= %s AND {quote(key)} < %s LIMIT 1", [low, high]
    )
    return cursor.fetchone() is not None


def _bound(text: str | None, number: str | None) -> Bound | None:
    if number is not None:
        return int(number)
    if text is None:
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return datetime.fromisoformat(text).astimezone(UTC)


def _literal(bound: Bound) -> str:
    return str(int(bound)) if isinstance(bound, int) else f"'{bound.astimezone(UTC).isoformat()}'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
