"""The options of the ``csv`` source and destination, validated by pydantic when the config is loaded."""

from __future__ import annotations

import codecs
from typing import Literal

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from conduit.connectors import ConnectorOptions, LocalPath
from conduit.inference import DEFAULT_INFER_ROWS
from conduit.types import parse_type

Compression = Literal["auto", "none", "gzip", "bz2", "zstd"]
Quoting = Literal["needed", "all_valid", "none"]

# YAML users write '\t' in single quotes and get a backslash and a t; accept that spelling too.
_ESCAPED = {"\\t": "\t"}
_LINE_BREAKS = ("\n", "\r")


def _one_character(value: str, what: str) -> str:
    value = _ESCAPED.get(value, value)
    if len(value) != 1:
        raise ValueError(f"{what} must be exactly one character, got {value!r}")
    if not value.isascii():
        raise ValueError(f"{what} must be an ASCII character, got {value!r}")
    if value in _LINE_BREAKS:
        raise ValueError(f"{what} cannot be a line break")
    return value


def _check_encoding(value: str) -> str:
    if value == "auto":
        return value
    try:
        codecs.lookup(value)
        "".encode(value)
    except LookupError as exc:
        raise ValueError(
            f"unknown text encoding {value!r} ({exc}); use a Python codec name or auto"
        ) from None
    return value


def _check_declared_type(column: str, name: str) -> pa.DataType:
    try:
        dtype = parse_type(name)
    except ValueError as exc:
        raise ValueError(f"column {column!r}: {exc}") from None
    if pa.types.is_decimal256(dtype):
        raise ValueError(
            f"column {column!r}: {name!r} needs decimal256, which the CSV reader cannot produce; "
            "use a precision of at most 38"
        )
    return dtype


class CsvSourceOptions(ConnectorOptions):
    """Options of ``type: csv`` as a source (see the package README for the full description)."""

    path: LocalPath
    header: bool = True
    column_names: list[str] | None = None
    columns: dict[str, str] | None = None
    delimiter: str = ","
    quote_char: str | None = '"'
    escape_char: str | None = None
    double_quote: bool = True
    null_values: list[str] = Field(default_factory=lambda: [""])
    true_values: list[str] | None = None
    false_values: list[str] | None = None
    encoding: str = "utf-8"
    compression: Compression = "auto"
    newlines_in_values: bool = True
    skip_rows: int = Field(default=0, ge=0)
    block_size: int | None = Field(default=None, gt=0)
    infer_rows: int = Field(default=DEFAULT_INFER_ROWS, ge=1)

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        return _one_character(value, "delimiter")

    @field_validator("quote_char")
    @classmethod
    def _quote_char(cls, value: str | None) -> str | None:
        return None if value is None else _one_character(value, "quote_char")

    @field_validator("escape_char")
    @classmethod
    def _escape_char(cls, value: str | None) -> str | None:
        return None if value is None else _one_character(value, "escape_char")

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        return _check_encoding(value)

    @field_validator("column_names")
    @classmethod
    def _column_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("column_names must list at least one name")
        if any(not name for name in value):
            raise ValueError("column_names cannot contain an empty name")
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"column_names lists {', '.join(map(repr, duplicates))} more than once")
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for column, name in (value or {}).items():
            _check_declared_type(column, name)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CsvSourceOptions:
        if not self.header and self.column_names is None:
            raise ValueError("column_names is required when header is false")
        special = {
            "delimiter": self.delimiter,
            "quote_char": self.quote_char,
            "escape_char": self.escape_char,
        }
        used = [(key, char) for key, char in special.items() if char is not None]
        for i, (key, char) in enumerate(used):
            for other, other_char in used[i + 1 :]:
                if char == other_char:
                    raise ValueError(f"{key} and {other} cannot both be {char!r}")
        return self

    def declared_types(self) -> dict[str, pa.DataType]:
        """The ``columns:`` option as Arrow types, by column name."""
        return {column: _check_declared_type(column, name) for column, name in (self.columns or {}).items()}


class CsvDestinationOptions(ConnectorOptions):
    """Options of ``type: csv`` as a destination."""

    path: LocalPath
    header: bool = True
    delimiter: str = ","
    quoting: Quoting = "needed"

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        value = _one_character(value, "delimiter")
        if value == '"':
            raise ValueError("delimiter cannot be the quote character '\"'")
        return value
