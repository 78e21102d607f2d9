"""Column type names used in config (``columns: {amount: "decimal(12,2)"}``) and their Arrow types.

The names are the ones a data engineer writes: ``int64``, ``bigint``, ``float64``, ``double``,
``decimal(38,9)``, ``bool``, ``string``, ``date``, ``timestamp`` (no time zone), ``timestamptz``
(UTC), ``timestamp[ms]``, ``timestamp[us, Europe/Paris]``, ``binary``. Parsing is strict: an unknown
name is an error listing the known ones.
"""

from __future__ import annotations

import re

import pyarrow as pa

_SIMPLE: dict[str, pa.DataType] = {
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "integer": pa.int64(),
    "int": pa.int64(),
    "bigint": pa.int64(),
    "smallint": pa.int16(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "float": pa.float64(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "text": pa.string(),
    "large_string": pa.large_string(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "date32": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}

_DECIMAL = re.compile(r"^(?:decimal|numeric)\s*\(\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?\)$")
_TIMESTAMP = re.compile(r"^timestamp\s*\[\s*(s|ms|us|ns)\s*(?:,\s*(?:tz\s*=\s*)?([^\]\s]+)\s*)?\]$")


def parse_type(name: str) -> pa.DataType:
    """Turn a config type name into an Arrow type; raise ``ValueError`` with the known names."""
    text = name.strip().lower()
    if text in _SIMPLE:
        return _SIMPLE[text]
    match = _DECIMAL.match(text)
    if match:
        precision = int(match.group(1))
        scale = int(match.group(2) or 0)
        if not 1 <= precision <= 76:
            raise ValueError(f"decimal precision must be 1..76, got {precision}")
        if not 0 <= scale <= precision:
            raise ValueError(f"decimal scale must be 0..precision ({precision}), got {scale}")
        return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    match = _TIMESTAMP.match(name.strip())
    if match:
        unit, tz = match.group(1), match.group(2)
        return pa.timestamp(unit, tz=tz)
    known = ", ".join(sorted(_SIMPLE)) + ", decimal(p,s), timestamp[unit], timestamp[unit, tz]"
    raise ValueError(f"unknown column type {name!r}; known types: {known}")


def type_name(dtype: pa.DataType) -> str:
    """The config spelling of an Arrow type (the inverse of :func:`parse_type` where one exists)."""
    if pa.types.is_decimal(dtype):
        return f"decimal({dtype.precision},{dtype.scale})"
    if pa.types.is_timestamp(dtype):
        return f"timestamp[{dtype.unit}, {dtype.tz}]" if dtype.tz else f"timestamp[{dtype.unit}]"
    if dtype == pa.bool_():
        return "bool"
    if dtype == pa.date32():
        return "date"
    return str(dtype)
