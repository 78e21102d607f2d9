"""The ``postgres`` source: a table (optionally some columns and a ``where``) or a query, streamed
with ``COPY (SELECT ...) TO STDOUT`` in the text format into pyarrow's CSV reader.

``discover`` runs the base query with ``LIMIT 0`` and maps the result's column types (resolved in
the catalog: domains to their base type, arrays to their element type) to Arrow. ``read`` streams
the COPY through a pipe into ``pyarrow.csv.open_csv`` with every column's type given, so nothing is
inferred and memory is bounded by the read block. The text format is tab-separated lines with
``\\N`` for NULL and backslash escapes, no quoting (the server writes it about 20% faster than CSV,
and the reader splits it faster): the reader parses it with quoting and escaping off, and text
columns are unescaped per batch (:mod:`conduit_postgres.textcopy`), only those holding a backslash.
Other columns the text cannot carry directly are converted per batch with vectorized kernels:
``bytea`` from hex, arrays from JSON.

With ``cursor_column`` the rows come in cursor order, past ``cursor_after``. The engine's
incremental filter (:attr:`ReadRequest.cursor <conduit.connectors.ReadRequest.cursor>`) is pushed
down the same way: ``WHERE (cursor >= value OR cursor IS NULL) ORDER BY cursor ASC NULLS LAST``,
text cursors compared and ordered ``COLLATE "C"`` (by code point, as Arrow compares them).

The text format distinguishes NULL (``\\N``) from the empty string (an empty field) and from the
string ``\\N`` (written ``\\\\N``), and the session is set to UTC, ISO dates and shortest round-trip
floats, so every value arrives exactly.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg2 import sql
from psycopg2.extensions import connection as Connection

from conduit import interrupts
from conduit.connectors import ReadRequest, Source, SourceBatch, SourceCapabilities
from conduit.errors import ConnectorError, DataError, DataLocation
from conduit_postgres import catalog, queries, textcopy
from conduit_postgres.arrays import json_lists
from conduit_postgres.connection import close_quietly, connect
from conduit_postgres.copy_out import CopyOut
from conduit_postgres.errors import one_line, statement_error
from conduit_postgres.hexbytes import HexError, hex_decode
from conduit_postgres.identifiers import shown
from conduit_postgres.options import PostgresSourceOptions
from conduit_postgres.textcopy import unescape
from conduit_postgres.types import PgType, list_element, numeric_typmod, to_arrow

DEFAULT_BLOCK_SIZE = 1 << 20
"""Bytes of COPY text per parsed block when ``fetch_block_size`` is not set."""

NUMERIC_OID = 1700
NUMERIC_ARRAY_OID = 1231
_CSV_COLUMN = re.compile(r"In CSV column #(\d+): ")
_ESCAPED_HEX = b"\\\\x"
"""How a ``bytea`` value starts in the text format: hex output's ``\\x``, its backslash escaped."""

Convert = Callable[[pa.Array], pa.Array]


@dataclass(frozen=True)
class ReadColumn:
    """One output column: its name and types, the SQL that selects it, and the per-batch conversion
    from what the reader parses (``csv_type``, text-format escapes left in strings) to the Arrow
    type (``arrow_type``)."""

    name: str
    pg: PgType
    arrow_type: pa.DataType
    csv_type: pa.DataType
    expression: sql.Composable
    convert: Convert | None = None


def _bytea(array: pa.Array) -> pa.Array:
    """Hex ``bytea`` as written in the text format: escapes are only ever the prefix's backslash,
    so the hex is decoded as it is, after the escaped prefix (messages show it unescaped)."""
    return hex_decode(array, _ESCAPED_HEX, shown_prefix="\\x")


def _cast(to: pa.DataType) -> Convert:
    def convert(array: pa.Array) -> pa.Array:
        return pc.cast(array, to)

    return convert


def _lists(list_type: pa.DataType) -> Convert:
    def convert(array: pa.Array) -> pa.Array:
        return json_lists(unescape(array), list_type)

    return convert


def plan_column(name: str, pg: PgType) -> ReadColumn:
    """How a result column of type ``pg`` is selected, parsed and converted."""
    arrow_type = to_arrow(pg)
    column = sql.SQL("{}.{}").format(queries.ALIAS, sql.Identifier(name))
    if list_element(pg) is not None:
        expression = sql.SQL("to_json({}::text[])::text").format(column)
        return ReadColumn(name, pg, arrow_type, pa.string(), expression, _lists(arrow_type))
    if pa.types.is_binary(arrow_type):
        return ReadColumn(name, pg, arrow_type, pa.string(), column, _bytea)
    if pa.types.is_decimal256(arrow_type):  # the CSV reader parses decimal128 only
        return ReadColumn(name, pg, arrow_type, pa.string(), column, _cast(arrow_type))
    if pa.types.is_string(arrow_type):  # text, json, enums, any type read as its text form
        return ReadColumn(name, pg, arrow_type, arrow_type, column, unescape)
    return ReadColumn(name, pg, arrow_type, arrow_type, column)


def _typmod(column: Any) -> int:
    """The type modifier of a result column, where the mapping needs it (``numeric(p,s)`` and its
    arrays), from what psycopg2 decodes of it: precision and scale for ``numeric``, and for other
    variable-length types the modifier less 4 as ``internal_size``."""
    if column.type_code == NUMERIC_OID:
        return numeric_typmod(column.precision, column.scale)
    if (
        column.type_code == NUMERIC_ARRAY_OID
        and column.internal_size is not None
        and column.internal_size >= 0
    ):
        return int(column.internal_size) + 4
    return -1


def jsonable(value: Any) -> Any:
    """A cursor value as JSON can hold it (timestamps and dates in ISO 8601, decimals as text)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


class PostgresSource(Source):
    """Reads a table or a query with ``COPY ... TO STDOUT``; see the module docstring."""

    options_model = PostgresSourceOptions
    capabilities = SourceCapabilities(typed=True, declared_columns=False, cursor_pushdown=True)
    options: PostgresSourceOptions

    def __init__(self, options: PostgresSourceOptions) -> None:
        super().__init__(options)
        self.where = f"postgres source {options.describe()}"
        self._connection: Connection | None = None
        self._columns: list[ReadColumn] | None = None
        self._lock = threading.Lock()  # cancelling (the interrupt watcher) and closing, one at a time
        self._stop_cancelling: Callable[[], None] | None = None

    def _connect(self) -> Connection:
        if self._connection is None or self._connection.closed:
            connection = connect(self.options)
            try:
                connection.set_session(readonly=True, autocommit=True)
                with connection.cursor() as cursor:
                    cursor.execute(queries.SESSION_SETTINGS)
            except psycopg2.Error as exc:
                close_quietly(connection)
                raise statement_error(exc, self.where) from None
            self._connection = connection
            if self._stop_cancelling is None:  # an interrupted run cancels the query or COPY running
                self._stop_cancelling = interrupts.register(self._cancel)
        return self._connection

    def _cancel(self) -> None:
        with self._lock:
            connection = self._connection
            if connection is not None and not connection.closed:
                try:
                    connection.cancel()
                except psycopg2.Error:
                    pass

    def _close_connection(self, connection: Connection | None) -> None:
        with self._lock:
            close_quietly(connection)

    def check(self) -> None:
        """Connect and run the query with ``LIMIT 0``: a missing table or column, a bad ``where``
        or ``query``, a missing privilege all fail here."""
        self._describe()

    def discover(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self._describe()])

    def _describe(self) -> list[ReadColumn]:
        if self._columns is not None:
            return self._columns
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(queries.probe(queries.base_query(self.options)))
                description = list(cursor.description or [])
                shapes = [(int(d.type_code), _typmod(d)) for d in description]
                types = catalog.resolve_types(cursor, shapes)
        except psycopg2.Error as exc:
            raise statement_error(exc, self.where) from None
        names = [str(d.name) for d in description]
        if not names:  # its rows would be empty lines, which carry no count through the reader
            raise ConnectorError(f"{self.where}: the result has no columns; select at least one")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConnectorError(
                f"{self.where}: the result has more than one column named {', '.join(map(shown, repeated))}; "
                "give each column a distinct name (AS ...)"
            )
        cursor_column = self.options.cursor_column
        if cursor_column is not None and cursor_column not in names:
            raise ConnectorError(
                f"{self.where}: cursor_column {shown(cursor_column)} is not a column of the result "
                f"(columns: {', '.join(map(shown, names))})"
            )
        self._columns = [plan_column(name, pg) for name, pg in zip(names, types, strict=True)]
        return self._columns

    def read(self, request: ReadRequest) -> Iterator[SourceBatch]:
        columns = self._describe()
        if [c.name for c in columns] != request.schema.names:
            raise ConnectorError(
                f"{self.where}: asked for columns {request.schema.names}, the result has {[c.name for c in columns]}"
            )
        pushdown = request.cursor
        binary_order = False
        if pushdown is not None:
            column = next((c for c in columns if c.name == pushdown.column), None)
            if column is None:
                raise ConnectorError(
                    f"{self.where}: the cursor column {shown(pushdown.column)} is not a column of the result "
                    f"(columns: {', '.join(shown(c.name) for c in columns)})"
                )
            binary_order = column.pg.category == "S" and pa.types.is_string(column.arrow_type)
        connection = self._connect()
        query = queries.read_query(
            queries.base_query(self.options),
            [c.expression for c in columns],
            self.options.cursor_column,
            self.options.cursor_after,
            pushdown,
            binary_order=binary_order,
        )
        try:
            statement = queries.copy_text(query).as_string(connection)
        except psycopg2.ProgrammingError as exc:  # a value psycopg2 cannot adapt to a literal
            raise ConnectorError(f"{self.where}: cannot use the cursor value: {one_line(str(exc))}") from None
        stream = CopyOut(connection, statement)
        finished = False
        try:
            yield from self._batches(stream, columns, request)
            finished = True
        finally:
            if not finished:
                stream.close()
                self._close_connection(connection)  # an interrupted COPY leaves the connection unusable

    def _batches(
        self, stream: CopyOut, columns: list[ReadColumn], request: ReadRequest
    ) -> Iterator[SourceBatch]:
        cursor_column = request.cursor.column if request.cursor is not None else self.options.cursor_column
        cursor_index = request.schema.names.index(cursor_column) if cursor_column is not None else None
        rows = 0
        cursor_value: Any = None
        for parsed in self._parsed(stream, columns):
            batch = self._converted(parsed, columns, request.schema, rows)
            for start in range(0, batch.num_rows, request.batch_size):
                piece = batch.slice(start, request.batch_size)
                rows += piece.num_rows
                position: dict[str, Any] = {"row": rows}
                if cursor_index is not None:
                    latest = pc.max(piece.column(cursor_index)).as_py()
                    cursor_value = cursor_value if latest is None else jsonable(latest)
                    position["cursor"] = cursor_value
                yield SourceBatch(piece, position)

    def _parsed(self, stream: CopyOut, columns: list[ReadColumn]) -> Iterator[pa.RecordBatch]:
        """The reader's batches, strings still escaped; the COPY's own error wins over the parse
        error it caused."""
        names = [f"c{i}" for i in range(len(columns))]
        try:
            if stream.is_empty():
                stream.finish()
                return
            reader = pacsv.open_csv(
                stream.reader,
                read_options=pacsv.ReadOptions(
                    column_names=names,
                    block_size=self.options.fetch_block_size or DEFAULT_BLOCK_SIZE,
                    use_threads=False,
                ),
                parse_options=textcopy.PARSE_OPTIONS,
                convert_options=pacsv.ConvertOptions(
                    column_types={name: c.csv_type for name, c in zip(names, columns, strict=True)},
                    null_values=[textcopy.NULL],
                    strings_can_be_null=True,
                    true_values=["t"],
                    false_values=["f"],
                ),
            )
            yield from reader
            stream.finish()
        except psycopg2.Error as exc:
            raise statement_error(exc, self.where) from None
        except pa.ArrowException as exc:
            stream.close()
            if stream.error is not None and isinstance(stream.error, psycopg2.Error):
                raise statement_error(stream.error, self.where) from None
            raise self._parse_error(exc, columns) from None

    def _parse_error(self, exc: pa.ArrowException, columns: list[ReadColumn]) -> DataError:
        message = one_line(str(exc))
        match = _CSV_COLUMN.search(message)
        column = None
        if match and int(match.group(1)) < len(columns):
            column = columns[int(match.group(1))]
            message = _CSV_COLUMN.sub("", message)
            message = f"{message} (PostgreSQL type {column.pg.display}, read as {column.arrow_type})"
        location = DataLocation(column=column.name if column else None)
        return DataError(f"{self.where}: cannot read a value: {message}", location)

    def _converted(
        self, parsed: pa.RecordBatch, columns: list[ReadColumn], schema: pa.Schema, before: int
    ) -> pa.RecordBatch:
        arrays = []
        for index, column in enumerate(columns):
            array = parsed.column(index)
            if column.convert is not None:
                try:
                    array = column.convert(array)
                except HexError as exc:
                    location = DataLocation(row=before + exc.row + 1, column=column.name)
                    raise DataError(f"{self.where}: {exc}", location) from None
                except (ValueError, pa.ArrowException) as exc:
                    raise DataError(
                        f"{self.where}: cannot read {column.pg.display} values as {column.arrow_type}: "
                        f"{one_line(str(exc))}",
                        DataLocation(column=column.name),
                    ) from None
            if array.type != schema.field(index).type:
                array = pc.cast(array, schema.field(index).type)
            arrays.append(array)
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def close(self) -> None:
        if self._stop_cancelling is not None:
            self._stop_cancelling()
            self._stop_cancelling = None
        self._close_connection(self._connection)
        self._connection = None
