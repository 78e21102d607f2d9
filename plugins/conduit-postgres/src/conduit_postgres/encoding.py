"""Arrow batches as PostgreSQL binary COPY data, column by column fitted to the target's types.

Each column gets a plan when the load opens, from its Arrow type and the type of the column it
loads into (the table's, or the one a created table gets). Most columns go to pgpq as they are; the
others are converted with Arrow kernels first:

* lists, structs and maps become JSON text, encoded as ``jsonb`` (or as text for ``json``/``text``);
* ``decimal256`` becomes ``numeric``'s binary form (see :mod:`conduit_postgres.numeric`);
* nanosecond timestamps, times and durations become microseconds (an error if that loses digits);
  dictionaries are decoded, ``date64`` is ``date32``, a null-typed column is text;
* into an existing table: integers are cast to the column's width (an error on overflow), integers
  and ``float32`` widen to ``double precision``/``numeric``, strings load into any text type, enum,
  ``json``, ``jsonb`` or ``uuid``, lists into arrays of exactly their element type.

Anything else is refused when the load opens, naming the column and both types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pgpq import ArrowToPostgresBinaryEncoder
from pgpq.encoders import LargeStringEncoderBuilder, StringEncoderBuilder, StringViewEncoderBuilder
from pgpq.schema import Jsonb

from conduit.errors import ConnectorError, DataError, DataLocation
from conduit_postgres.hexbytes import HexError, hex_decode
from conduit_postgres.identifiers import shown
from conduit_postgres.jsontext import json_text
from conduit_postgres.numeric import numeric_binary
from conduit_postgres.types import PgType, natural_type, storage_type

Convert = Callable[[pa.Array], pa.Array]

_INTEGERS = {"int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64()}
_FLOATS = {"float4": pa.float32(), "float8": pa.float64()}
_TIMESTAMPS = frozenset({"timestamp", "timestamptz"})


@dataclass(frozen=True)
class ColumnPlan:
    """How one Arrow column is turned into what pgpq encodes for its PostgreSQL column."""

    name: str
    convert: Convert | None
    wire_type: pa.DataType
    jsonb: bool = False


def _chain(*steps: Convert | None) -> Convert | None:
    present = [step for step in steps if step is not None]
    if not present:
        return None

    def run(array: pa.Array) -> pa.Array:
        for step in present:
            array = step(array)
        return array

    return run


def _cast(to: pa.DataType) -> Convert:
    def cast(array: pa.Array) -> pa.Array:
        return pc.cast(array, to, safe=True)

    return cast


def _storage(array: pa.Array) -> pa.Array:
    while True:
        if isinstance(array.type, pa.ExtensionType):
            array = array.storage
        elif pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        else:
            return array


def _prepared(dtype: pa.DataType) -> tuple[Convert | None, pa.DataType]:
    """What any load does to a column so pgpq can encode it, and the resulting type."""
    unwrap = _storage if storage_type(dtype) != dtype else None
    t = storage_type(dtype)
    target: pa.DataType | None = None
    if pa.types.is_null(t):
        target = pa.string()
    elif pa.types.is_date64(t):
        target = pa.date32()
    elif pa.types.is_timestamp(t) and t.unit == "ns":
        target = pa.timestamp("us", tz=t.tz)
    elif pa.types.is_time64(t) and t.unit == "ns":
        target = pa.time64("us")
    elif pa.types.is_duration(t) and t.unit == "ns":
        target = pa.duration("us")
    elif pa.types.is_binary_view(t):
        target = pa.binary()
    if target is None:
        return unwrap, t
    return _chain(unwrap, _cast(target)), target


def uuid_bytes(array: pa.Array) -> pa.Array:
    """UUID text (any case, with or without dashes or braces) as the 16 bytes ``uuid`` receives."""
    compact = pc.replace_substring(pc.utf8_trim(pc.cast(array, pa.string()), "{}"), "-", "")
    wrong = pc.fill_null(pc.not_equal(pc.utf8_length(compact), 32), False)
    if pc.any(wrong).as_py():
        raise HexError("not a UUID", pc.index(wrong, True).as_py())
    return hex_decode(compact)


def _refused(field: pa.Field, target: PgType, where: str) -> ConnectorError:
    return ConnectorError(
        f"{where}: column {shown(field.name)} is {target.display} in the table, and the load brings "
        f"{field.type}, which binary COPY cannot convert; change the column's type or the data's"
    )


def plan_column(field: pa.Field, target: PgType | None, where: str) -> ColumnPlan:
    """The plan for ``field`` loading into a column of type ``target`` (``None``: a column created
    from the Arrow type, see :func:`conduit_postgres.types.column_ddl`)."""
    prepare, t = _prepared(field.type)
    name = field.name
    try:
        natural = natural_type(t)
    except ConnectorError:
        raise ConnectorError(
            f"{where}: column {shown(name)} has type {field.type}, which has no PostgreSQL counterpart"
        ) from None

    def plan(convert: Convert | None, wire: pa.DataType, jsonb: bool = False) -> ColumnPlan:
        return ColumnPlan(name, _chain(prepare, convert), wire, jsonb)

    if pa.types.is_null(storage_type(field.type)):
        return plan(None, t)  # all NULL: a NULL field carries no type in binary COPY

    if target is not None and target.is_array and target.element is not None:
        value_type = getattr(t, "value_type", None)
        if (
            (pa.types.is_list(t) or pa.types.is_large_list(t))
            and value_type is not None
            and not pa.types.is_nested(value_type)
            and natural_type(value_type) == target.element.name
        ):
            return plan(None, t)
        raise _refused(field, target, where)
    if natural == "jsonb":
        if target is None or target.name == "jsonb":
            return plan(json_text, pa.string(), jsonb=True)
        if target.is_text:
            return plan(json_text, pa.string())
        raise _refused(field, target, where)
    goal = natural if target is None else target.name
    if goal == natural or (natural in _TIMESTAMPS and goal in _TIMESTAMPS):
        if pa.types.is_decimal256(t):
            return plan(numeric_binary, pa.binary())
        return plan(None, t)
    if pa.types.is_integer(t):
        if goal in _INTEGERS:
            return plan(_cast(_INTEGERS[goal]), _INTEGERS[goal])
        if goal in _FLOATS:
            return plan(_cast(_FLOATS[goal]), _FLOATS[goal])
        if goal == "numeric":
            return plan(_cast(pa.decimal128(20, 0)), pa.decimal128(20, 0))
    if pa.types.is_floating(t) and goal == "float8":
        return plan(_cast(pa.float64()), pa.float64())
    if natural == "text" and target is not None:
        if target.is_text:
            return plan(None, t)
        if goal == "jsonb":
            return plan(None, t, jsonb=True)
        if goal == "uuid":
            return plan(uuid_bytes, pa.binary())
    if goal == "uuid" and pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
        return plan(None, t)
    if target is None:
        raise ConnectorError(f"{where}: column {shown(name)} has type {field.type}, which cannot be loaded")
    raise _refused(field, target, where)


class BatchEncoder:
    """Encodes batches of one schema as one binary COPY stream: ``header()``, ``encode()`` per
    batch, ``finish()``. Conversion errors are :class:`DataError` naming the column."""

    def __init__(self, schema: pa.Schema, targets: Mapping[str, PgType | None], where: str) -> None:
        self.schema = schema
        self.where = where
        self.plans = [plan_column(field, targets.get(field.name), where) for field in schema]
        self.wire_schema = pa.schema([pa.field(p.name, p.wire_type) for p in self.plans])
        if any(p.jsonb for p in self.plans):
            builders = {
                field.name: (
                    _jsonb_builder(field) if plan.jsonb else ArrowToPostgresBinaryEncoder.infer_encoder(field)
                )
                for field, plan in zip(self.wire_schema, self.plans, strict=True)
            }
            self._encoder = ArrowToPostgresBinaryEncoder.new_with_encoders(self.wire_schema, builders)
        else:
            self._encoder = ArrowToPostgresBinaryEncoder(self.wire_schema)

    def header(self) -> bytes:
        return self._encoder.write_header()

    def encode(self, batch: pa.RecordBatch, first_row: int) -> bytes:
        """The COPY data of ``batch``, whose first row is row ``first_row`` (1-based) of the load."""
        columns = []
        for index, plan in enumerate(self.plans):
            column = batch.column(index)
            if plan.convert is not None:
                column = self._convert(plan, column, first_row)
            if column.type != plan.wire_type:
                column = pc.cast(column, plan.wire_type)
            columns.append(column)
        wire = pa.RecordBatch.from_arrays(columns, schema=self.wire_schema)
        try:
            return self._encoder.write_batch(wire)
        except (ValueError, pa.ArrowException) as exc:
            raise DataError(
                f"{self.where}: cannot encode this batch: {exc}", DataLocation(row=first_row)
            ) from None

    def finish(self) -> bytes:
        return self._encoder.finish()

    def _convert(self, plan: ColumnPlan, column: pa.Array, first_row: int) -> pa.Array:
        assert plan.convert is not None
        try:
            return plan.convert(column)
        except HexError as exc:
            location = DataLocation(row=first_row + exc.row, column=plan.name)
            raise DataError(f"{self.where}: {exc}", location) from None
        except (ValueError, pa.ArrowException) as exc:
            message = f"{self.where}: cannot convert the values of rows {first_row}.. ({exc})"
            raise DataError(message, DataLocation(column=plan.name)) from None


def _jsonb_builder(
    field: pa.Field,
) -> LargeStringEncoderBuilder | StringEncoderBuilder | StringViewEncoderBuilder:
    """pgpq's encoder writing a text column as ``jsonb`` (a version byte, then the JSON text)."""
    if pa.types.is_large_string(field.type):
        return LargeStringEncoderBuilder.new_with_output(field, Jsonb())
    if pa.types.is_string_view(field.type):
        return StringViewEncoderBuilder.new_with_output(field, Jsonb())
    return StringEncoderBuilder.new_with_output(field, Jsonb())
