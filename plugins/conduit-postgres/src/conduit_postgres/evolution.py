"""Schema evolution at the table: the DDL for the changes a schema policy accepted, and running it.

:func:`plan_statements` turns :class:`~conduit.schema.ColumnChange` objects into one statement each,
every name quoted and every type spelled by :func:`~conduit_postgres.types.column_ddl` (the type a
created table would get):

* ``added``: ``ALTER TABLE "s"."t" ADD COLUMN "c" <type>`` (nullable, no default: existing rows read
  NULL, no table rewrite);
* a change with compatibility ``widening`` (a ``type_changed``, or a column that is back with a
  wider type):
  ``ALTER TABLE "s"."t" ALTER COLUMN "c" TYPE <widened> USING "c"::<widened>`` (a naive
  ``timestamp`` becoming ``timestamptz`` uses ``USING "c" AT TIME ZONE 'UTC'``: the values are taken
  as UTC, as Arrow and the binary COPY take them, whatever the server's ``TimeZone``);
* ``removed``, ``fits`` and ``incompatible`` changes: nothing (a removed column stays and loads as
  NULL; a value that fits is converted on the way in).

The plan is checked against the table as it is, so it never narrows nor repeats: a column that
already holds the widened type (a user made it ``bigint``, or ``numeric(30,10)`` where
``numeric(12,2)`` is asked) and an "added" column the table already has get no statement; a widened
column the table lacks is added with the widened type; a table that does not exist gets none (the
load creates it from the target schema). The statements are plain strings, the same every time for
the same table and changes: what a plan shows is what later runs.

:func:`run_statements` runs them on a cursor inside the caller's transaction; a failure is a
:class:`ConnectorError` naming the statement (see :func:`~conduit_postgres.errors.schema_change_error`).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2
import pyarrow as pa
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

from conduit.errors import ConnectorError
from conduit.schema import ColumnChange, compare_types
from conduit_postgres import statements
from conduit_postgres.catalog import Table
from conduit_postgres.errors import schema_change_error
from conduit_postgres.identifiers import TableName, identifier_problem, shown
from conduit_postgres.types import (
    PgType,
    column_ddl,
    field_max_length,
    max_length,
    natural_type,
    numeric_precision_scale,
    stored_type,
    to_arrow,
)

_NUMERIC_SOURCES = frozenset({"int2", "int4", "int8", "numeric"})
_TIMESTAMPTZ = "timestamp with time zone"


def column_holds(pg: PgType, dtype: pa.DataType) -> bool:
    """Whether a column of type ``pg`` already takes every value of Arrow type ``dtype`` exactly, so
    widening it to ``dtype`` would change nothing (or narrow it)."""
    try:
        ddl = column_ddl(dtype)
    except ConnectorError:
        return False
    if pg.display == ddl:
        return True
    if max_length(pg) is not None:  # varchar(n), char(n): only a wider text type holds a string
        return False
    if pg.name == "numeric" and numeric_precision_scale(pg.typmod) is None:
        return natural_type(dtype) in _NUMERIC_SOURCES  # unconstrained numeric holds any number
    compatibility, _ = compare_types(to_arrow(pg), stored_type(dtype))
    return compatibility == "fits"


def text_widening(field: pa.Field) -> ColumnChange | None:
    """For a ``current_schema()`` field of a ``varchar(n)``/``char(n)`` column (a string carrying
    :data:`~conduit_postgres.types.MAX_LENGTH`), the change that widens it to ``text``; ``None`` for
    any other field. Its plan is ``ALTER TABLE ... ALTER COLUMN "c" TYPE text USING "c"::text``."""
    if field_max_length(field) is None:
        return None
    return ColumnChange("type_changed", field.name, field.type, pa.string(), "widening", pa.string())


def _column_type(name: str, dtype: pa.DataType, where: str) -> str:
    problem = identifier_problem(name)
    if problem:
        raise ConnectorError(f"{where}: column name {shown(name)} {problem}")
    try:
        return column_ddl(dtype)
    except ConnectorError:
        raise ConnectorError(
            f"{where}: column {shown(name)} has type {dtype}, which has no PostgreSQL counterpart"
        ) from None


def plan_statements(
    connection: Connection,
    target: TableName,
    table: Table | None,
    changes: Sequence[ColumnChange],
    where: str,
    *,
    never_added: str | None = None,
) -> list[str]:
    """The DDL making ``changes`` to ``table`` (as the catalog describes ``target`` now, ``None``
    when it does not exist), rendered on ``connection``. ``never_added``: a column never stored (the
    merge's ``hard_delete`` flag), for which an ``added`` change plans nothing."""
    if table is None:
        return []
    planned: list[str] = []
    for change in changes:
        widening = change.compatibility == "widening"  # a type change, or a column back, wider
        if widening:
            dtype = change.widened
        elif change.kind == "added" and change.current is None:
            dtype = change.incoming
        else:
            continue
        if dtype is None:
            raise ConnectorError(
                f"{where}: the change to column {shown(change.column)} has no type: {change}"
            )
        name = change.column
        ddl = _column_type(name, dtype, where)
        column = table.column(name)
        if column is None:
            if not widening and name == never_added:
                continue
            statement = statements.add_column(target, name, ddl)
        elif not widening or column_holds(column.type, dtype):
            continue  # the table has it already: the load fits its values into the column
        else:
            naive = column.type.name == "timestamp" and ddl == _TIMESTAMPTZ
            statement = statements.alter_column_type(target, name, ddl, from_naive_timestamp=naive)
        planned.append(statement.as_string(connection))
    return planned


def run_statements(cursor: Cursor, planned: Sequence[str], where: str) -> None:
    """Run ``planned`` (from :func:`plan_statements`) verbatim, in order, in the cursor's transaction;
    the first failure raises a :class:`ConnectorError` naming its statement (the caller rolls back)."""
    for statement in planned:
        try:
            cursor.execute(statement)
        except psycopg2.Error as exc:
            raise schema_change_error(exc, statement, where) from None
