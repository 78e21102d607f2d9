"""The type mapping between Arrow and PostgreSQL, both ways (the package README has the tables).

PostgreSQL -> Arrow (what the source reads, what ``current_schema()`` reports) is lossless:
``numeric(p,s)`` is ``decimal128(p,s)`` (``decimal256`` above 38 digits); an unconstrained
``numeric`` has no Arrow decimal that holds every value (up to 131072 digits before the point and
16383 after), so it is read as its exact decimal text (``string``). ``interval`` mixes months, days
and microseconds, which no Arrow type that every destination can write holds, so it is its ISO 8601
text (``P1Y2M3DT4H5M6.5S``). One-dimensional arrays of scalar types are lists. Types without an
Arrow counterpart (``uuid``, ``json``/``jsonb``, ``inet``, enums, ranges...) are their text form.

A length-limited text column (``varchar(n)``, ``char(n)``) is a ``string`` whose field carries
``{b"conduit.max_length": b"<n>"}`` in :func:`arrow_field` (what ``current_schema()`` reports), so a
caller can tell it apart from ``text``; comparing types alone, it is an ordinary string.

Arrow -> PostgreSQL is the column type a created table gets, which is also what pgpq's binary
encoding of the Arrow type loads into without conversion.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from conduit.errors import ConnectorError

NUMERIC_UNCONSTRAINED = -1
MAX_LENGTH = b"conduit.max_length"
"""The field metadata key holding the length limit of a ``varchar(n)``/``char(n)`` column."""
_LENGTH_LIMITED = frozenset({"varchar", "bpchar"})
_VARHDRSZ = 4

_SCALARS: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "oid": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "time": pa.time64("us"),
}

# Array element types read as Arrow lists: their text form casts exactly to the element's Arrow type.
_LIST_ELEMENTS = {
    "bool",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "date",
    "timestamp",
    "timestamptz",
}

TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name", "char", "citext", "json", "xml"})
"""Base types whose binary input is plain text: a string column loads into them as is."""


@dataclass(frozen=True)
class PgType:
    """A column type as the catalog describes it, domains resolved to their base type.

    ``name`` is ``pg_type.typname`` (``int4``, ``numeric``, ``_int4`` for ``integer[]``),
    ``category`` is ``pg_type.typcategory`` (``A`` array, ``E`` enum, ``S`` string...), ``display``
    is ``format_type`` as a user writes it (``numeric(12,2)``, ``integer[]``).
    """

    name: str
    typmod: int
    category: str
    display: str
    element: PgType | None = None

    @property
    def is_array(self) -> bool:
        return self.category == "A" and self.element is not None

    @property
    def is_text(self) -> bool:
        """Loads from text as is: the text types, and enums (their binary input is the label)."""
        return self.name in TEXT_TYPES or self.category == "E"


def numeric_precision_scale(typmod: int) -> tuple[int, int] | None:
    """``(precision, scale)`` of a ``numeric`` typmod, or ``None`` when unconstrained."""
    if typmod < 4:
        return None
    packed = typmod - 4
    precision = (packed >> 16) & 0xFFFF
    scale = packed & 0x7FF
    if scale > 1023:  # an 11-bit signed scale (PostgreSQL 15 allows negative scales)
        scale -= 2048
    return precision, scale


def numeric_typmod(precision: int | None, scale: int | None) -> int:
    """The typmod psycopg2 decoded into ``precision``/``scale`` (65535 means unconstrained)."""
    if precision is None or precision == 0xFFFF or scale is None:
        return NUMERIC_UNCONSTRAINED
    return ((precision << 16) | (scale & 0x7FF)) + 4


def decimal_type(precision: int, scale: int) -> pa.DataType:
    """The Arrow decimal that holds every ``numeric(precision, scale)`` value exactly."""
    if scale < 0:
        precision, scale = precision - scale, 0
    precision = max(precision, scale, 1)
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


def to_arrow(pg: PgType) -> pa.DataType:
    """The Arrow type a column of this PostgreSQL type is read as (see the module docstring)."""
    if pg.name in _SCALARS:
        return _SCALARS[pg.name]
    if pg.name == "numeric":
        shape = numeric_precision_scale(pg.typmod)
        return pa.string() if shape is None else decimal_type(*shape)
    element = pg.element
    if pg.is_array and element is not None:
        if element.name in _LIST_ELEMENTS:
            return pa.list_(to_arrow(element))
        if element.is_text or element.name == "uuid":
            return pa.list_(pa.string())
    return pa.string()


def max_length(pg: PgType) -> int | None:
    """``n`` of a ``varchar(n)`` or ``char(n)`` column, ``None`` for any other type (``text``,
    ``varchar`` without a limit)."""
    if pg.name in _LENGTH_LIMITED and pg.typmod >= _VARHDRSZ:
        return pg.typmod - _VARHDRSZ
    return None


def arrow_field(name: str, pg: PgType) -> pa.Field:
    """The Arrow field a column reads as: its :func:`to_arrow` type, and for a length-limited text
    column the :data:`MAX_LENGTH` metadata."""
    limit = max_length(pg)
    metadata = None if limit is None else {MAX_LENGTH: str(limit).encode("ascii")}
    return pa.field(name, to_arrow(pg), metadata=metadata)


def field_max_length(field: pa.Field) -> int | None:
    """The length limit :func:`arrow_field` recorded on ``field``, or ``None`` when it has none."""
    value = (field.metadata or {}).get(MAX_LENGTH)
    return None if value is None else int(value)


def list_element(pg: PgType) -> PgType | None:
    """The element type when the column is read as an Arrow list, else ``None``."""
    return pg.element if pa.types.is_list(to_arrow(pg)) else None


def storage_type(dtype: pa.DataType) -> pa.DataType:
    """The type the values are stored as: an extension's storage, a dictionary's values."""
    while True:
        if isinstance(dtype, pa.ExtensionType):
            dtype = dtype.storage_type
        elif pa.types.is_dictionary(dtype):
            dtype = dtype.value_type
        else:
            return dtype


def natural_type(dtype: pa.DataType) -> str:
    """The PostgreSQL base type (``pg_type.typname``) that an Arrow type loads into unconverted."""
    t = storage_type(dtype)
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "int2"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "int4"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "int8"
    if pa.types.is_uint64(t) or pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "float4"
    if pa.types.is_float64(t):
        return "float8"
    if (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_null(t)
    ):
        return "text"
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        return "bytea"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_duration(t):
        return "interval"
    if pa.types.is_nested(t):
        return "jsonb"
    raise ConnectorError(f"Arrow type {dtype} has no PostgreSQL counterpart in the postgres destination")


def stored_type(dtype: pa.DataType) -> pa.DataType:
    """The Arrow type a column created for ``dtype`` reads back as (what ``current_schema`` reports)."""
    natural = natural_type(dtype)
    if natural == "numeric":
        t = storage_type(dtype)
        return decimal_type(20, 0) if pa.types.is_uint64(t) else decimal_type(t.precision, t.scale)
    return _SCALARS.get(natural, pa.string())


_DDL = {
    "bool": "boolean",
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "float4": "real",
    "float8": "double precision",
    "text": "text",
    "bytea": "bytea",
    "date": "date",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "time": "time without time zone",
    "interval": "interval",
    "jsonb": "jsonb",
}


def column_ddl(dtype: pa.DataType) -> str:
    """The column type a created table gets for an Arrow type: ``bigint``, ``numeric(38,9)``...,
    spelled as ``format_type`` spells it, so it compares with :attr:`PgType.display`."""
    natural = natural_type(dtype)
    if natural != "numeric":
        return _DDL[natural]
    t = storage_type(dtype)
    if pa.types.is_uint64(t):
        return "numeric(20,0)"
    precision, scale = t.precision, t.scale
    if scale < 0:
        precision, scale = precision - scale, 0
    return f"numeric({precision},{scale})"
