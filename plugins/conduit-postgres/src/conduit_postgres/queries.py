"""The SQL the source runs: the base query, its ``LIMIT 0`` probe, and the streaming ``COPY``.

The base query is the user's ``query``, or ``SELECT columns FROM table WHERE (where)``. It is always
wrapped as a subquery, so column expressions, the cursor filter and ordering apply to its output
columns by name. ``where`` and ``query`` are SQL the user wrote and are used as such; cursor values
(``cursor_after``, the engine's :class:`~conduit.connectors.CursorFilter`) are literals adapted by
psycopg2 (quoted and escaped), never formatted into the text: ``COPY`` cannot take bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg2 import sql

from conduit.connectors import CursorFilter
from conduit_postgres.identifiers import column_list
from conduit_postgres.options import PostgresSourceOptions

ALIAS = sql.Identifier("_conduit_source")

SESSION_SETTINGS = (
    "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601'; "
    "SET extra_float_digits = 1; SET bytea_output = 'hex'"
)
"""Text output the reader parses exactly: UTC offsets (``+00``), ISO dates, ISO 8601 intervals,
shortest round-trip floats, hex bytea."""


def base_query(options: PostgresSourceOptions) -> sql.Composable:
    target = options.target
    if target is None:
        return sql.SQL(options.query or "")
    columns = column_list(options.columns) if options.columns else sql.SQL("*")
    query = sql.SQL("SELECT {} FROM {}").format(columns, target.sql)
    if options.where:
        query = sql.SQL("{} WHERE ({})").format(query, sql.SQL(options.where))
    return query


def probe(base: sql.Composable) -> sql.Composed:
    """The base query's columns and types, without reading a row."""
    return sql.SQL("SELECT * FROM ({}) AS {} LIMIT 0").format(base, ALIAS)


def read_query(
    base: sql.Composable,
    expressions: Sequence[sql.Composable],
    cursor_column: str | None,
    cursor_after: object,
    pushdown: CursorFilter | None = None,
    *,
    binary_order: bool = False,
) -> sql.Composed:
    """``SELECT expressions FROM (base)``, past ``cursor_after`` and in cursor order when set.

    ``pushdown`` is the engine's incremental filter: rows at or past its value (strictly past when
    not inclusive) and rows whose cursor is NULL, in ascending cursor order with the NULLs last;
    without a value only the order. ``binary_order`` compares and orders its column with
    ``COLLATE "C"`` (by code point, as Arrow compares strings). With both, both filters apply and the
    rows come in ``pushdown``'s order, then ``cursor_column``'s."""
    query = sql.SQL("SELECT {} FROM ({}) AS {}").format(sql.SQL(", ").join(expressions), base, ALIAS)
    conditions: list[sql.Composable] = []
    ordering: list[sql.Composable] = []
    if pushdown is not None:
        column = _output(pushdown.column)
        compared = sql.SQL('{} COLLATE "C"').format(column) if binary_order else column
        if pushdown.value is not None:
            conditions.append(
                sql.SQL("({} {} {} OR {} IS NULL)").format(
                    compared,
                    sql.SQL(">=" if pushdown.inclusive else ">"),
                    sql.Literal(pushdown.value),
                    column,
                )
            )
        ordering.append(sql.SQL("{} ASC NULLS LAST").format(compared))
    if cursor_column is not None:
        cursor = _output(cursor_column)
        if cursor_after is not None:
            conditions.append(sql.SQL("{} > {}").format(cursor, sql.Literal(cursor_after)))
        if pushdown is None or pushdown.column != cursor_column:
            ordering.append(cursor)
    if conditions:
        query = sql.SQL("{} WHERE {}").format(query, sql.SQL(" AND ").join(conditions))
    if ordering:
        query = sql.SQL("{} ORDER BY {}").format(query, sql.SQL(", ").join(ordering))
    return query


def _output(column: str) -> sql.Composed:
    """A column of the base query's output."""
    return sql.SQL("{}.{}").format(ALIAS, sql.Identifier(column))


def copy_text(query: sql.Composable) -> sql.Composed:
    """The query's rows in ``COPY``'s text format (see :mod:`conduit_postgres.textcopy`)."""
    return sql.SQL("COPY ({}) TO STDOUT").format(query)
