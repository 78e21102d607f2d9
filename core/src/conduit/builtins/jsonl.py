"""Built-in JSON Lines source and destination (one JSON object per line).

Source: one file or a glob (``.gz``/``.bz2``/``.zst`` decompressed by extension), streamed with
``pyarrow.json.open_json``. Column types are inferred from the first block, or declared with
``columns: {name: type}``. A field that appears later and is not in the schema is an error naming the
field and line (never silently dropped); declare it, or set ``unexpected_fields: ignore``.

Destination: one file, written to a hidden temp file and renamed over the target at commit. Rows are
encoded with vectorised Arrow string kernels, not per-row Python: integers and floats as JSON numbers
(NaN and infinities as ``NaN``/``Infinity``/``-Infinity``, which Python and Arrow read back), decimals
as strings (exact), dates and timestamps as ISO-8601 strings (UTC instants end in ``Z``), booleans,
and escaped strings. Binary (base64), list and struct columns take a slower per-value path.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from pydantic import field_validator

from conduit.connectors import (
    ConnectorOptions,
    Destination,
    DestinationCapabilities,
    LoadSession,
    LocalPath,
    ReadRequest,
    Source,
    SourceBatch,
    SourceCapabilities,
    WriteRequest,
)
from conduit.errors import DataError, DataLocation
from conduit.files import (
    already_loaded,
    compression_for,
    ensure_parent,
    expand_paths,
    fsync_path,
    remove_quietly,
    temp_path_for,
)
from conduit.types import parse_type, type_name

SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".jsonl.bz2", ".jsonl.zst", ".json.gz")
DEFAULT_BLOCK = 1 << 20


def _parse_types(value: dict[str, str] | None) -> dict[str, str] | None:
    for name, spec in (value or {}).items():
        try:
            parse_type(spec)
        except ValueError as exc:
            raise ValueError(f"column {name!r}: {exc}") from None
    return value


class JsonlSourceOptions(ConnectorOptions):
    path: LocalPath
    columns: dict[str, str] | None = None
    unexpected_fields: Literal["error", "ignore"] = "error"
    block_size: int | None = None

    _types = field_validator("columns")(_parse_types)


def _parsed_as(dtype: pa.DataType) -> pa.DataType:
    """Arrow's JSON parser reads dates only from numbers: read them as strings and cast after."""
    return pa.string() if pa.types.is_date(dtype) else dtype


class JsonlSource(Source):
    options_model = JsonlSourceOptions
    capabilities = SourceCapabilities(typed=False, declared_columns=True, file_positions=True)
    options: JsonlSourceOptions

    def files(self) -> list[str]:
        return expand_paths(self.options.path, SUFFIXES)

    def check(self) -> None:
        self.files()

    def _stream(self, file: str) -> pa.NativeFile:
        return pa.input_stream(file, compression=compression_for(file))

    def _read_options(self, batch_size: int | None = None) -> pajson.ReadOptions:
        block = self.options.block_size or DEFAULT_BLOCK
        if batch_size is not None and self.options.block_size is None:
            block = max(64 << 10, min(64 << 20, batch_size * 200))
        return pajson.ReadOptions(block_size=block, use_threads=True)

    def discover(self) -> pa.Schema:
        declared = {k: parse_type(v) for k, v in (self.options.columns or {}).items()}
        file = self.files()[0]
        try:
            with self._stream(file) as stream:
                reader = pajson.open_json(stream, read_options=self._read_options())
                inferred = reader.schema
        except pa.ArrowInvalid as exc:
            if "Empty JSON file" in str(exc) or "empty" in str(exc).lower():
                inferred = pa.schema([])
            else:
                raise _locate(file, exc, None) from None
        fields = []
        for field in inferred:
            dtype = declared.get(field.name, field.type)
            fields.append(pa.field(field.name, pa.string() if pa.types.is_null(dtype) else dtype))
        names = set(inferred.names)
        fields.extend(pa.field(name, dtype) for name, dtype in declared.items() if name not in names)
        if not fields:
            raise DataError("file holds no JSON objects and no columns are declared", DataLocation(file=file))
        return pa.schema(fields)

    def read(self, request: ReadRequest) -> Iterator[SourceBatch]:
        parse_schema = pa.schema([pa.field(f.name, _parsed_as(f.type)) for f in request.schema])
        parse = pajson.ParseOptions(
            explicit_schema=parse_schema,
            unexpected_field_behavior="ignore" if self.options.unexpected_fields == "ignore" else "error",
        )
        for file in self.files():
            if already_loaded(file, request.skip_files):
                continue
            rows = 0
            try:
                with self._stream(file) as stream:
                    try:
                        reader = pajson.open_json(
                            stream, read_options=self._read_options(request.batch_size), parse_options=parse
                        )
                    except pa.ArrowInvalid as exc:
                        if "empty" in str(exc).lower():
                            continue
                        raise
                    for batch in reader:
                        batch = _cast(batch, request.schema, file, rows)
                        rows += batch.num_rows
                        yield SourceBatch(batch, {"file": file, "row": rows})
            except pa.ArrowInvalid as exc:
                raise _locate(file, exc, request.schema) from None


def _cast(batch: pa.RecordBatch, schema: pa.Schema, file: str, first_row: int) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch.select(schema.names) if batch.schema.names != schema.names else batch
    columns = []
    for field in schema:
        column = batch.column(field.name)
        if column.type != field.type:
            try:
                column = pc.cast(column, field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                for index, value in enumerate(column.to_pylist()):
                    try:
                        pc.cast(pa.array([value], column.type), field.type)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        raise DataError(
                            f"value {value!r} is not a valid {type_name(field.type)}",
                            DataLocation(file=file, row=first_row + index + 1, column=field.name),
                        ) from None
                raise
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _locate(file: str, exc: pa.ArrowInvalid, schema: pa.Schema | None) -> DataError:
    """Error path only: find the line that made Arrow's JSON reader fail, with plain Python."""
    reason = str(exc).split("\n")[0].removeprefix("JSON parse error: ")
    known = set(schema.names) if schema is not None else None
    with pa.input_stream(file, compression=compression_for(file)) as stream:
        for number, raw in enumerate(io.BufferedReader(stream), start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                message = getattr(err, "msg", str(err))
                return DataError(f"invalid JSON: {message}", DataLocation(file=file, line=number))
            if not isinstance(value, dict):
                return DataError("each line must hold a JSON object", DataLocation(file=file, line=number))
            if known is not None:
                extra = [key for key in value if key not in known]
                if extra and "unexpected field" in reason:
                    return DataError(
                        f"field {extra[0]!r} is not in the schema ({', '.join(sorted(known))}); declare "
                        f"it under columns:, or set unexpected_fields: ignore",
                        DataLocation(file=file, line=number, column=extra[0]),
                    )
                for field in schema or []:
                    if value.get(field.name) is None:
                        continue
                    try:
                        pc.cast(pa.array([value[field.name]]), field.type)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
                        return DataError(
                            f"value {value[field.name]!r} does not fit type {type_name(field.type)}",
                            DataLocation(file=file, line=number, column=field.name),
                        )
    return DataError(reason, DataLocation(file=file))


class JsonlDestinationOptions(ConnectorOptions):
    path: LocalPath


class JsonlDestination(Destination):
    options_model = JsonlDestinationOptions
    capabilities = DestinationCapabilities(
        write_modes=frozenset({"replace"}), atomic=True, preserves_types=False
    )
    options: JsonlDestinationOptions

    def check(self) -> None:
        ensure_parent(self.options.path)

    def open(self, request: WriteRequest) -> LoadSession:
        ensure_parent(self.options.path)
        return JsonlLoadSession(self.options.path, request)


class JsonlLoadSession(LoadSession):
    def __init__(self, target: str, request: WriteRequest) -> None:
        self.target = target
        self.temp = temp_path_for(target, request.run_id)
        self.keys = [json.dumps(name, ensure_ascii=False) for name in request.schema.names]
        self.stream: pa.NativeFile | None = pa.output_stream(self.temp, compression=compression_for(target))

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        assert self.stream is not None
        parts: list[Any] = []
        for index, key in enumerate(self.keys):
            parts.append(("{" if index == 0 else ",") + key + ":")
            parts.append(encode_json_values(batch.column(index)))
        parts.append("}\n")
        lines = pc.binary_join_element_wise(*parts, "")
        # The rows are contiguous in the string array's data buffer: write that slice as it is.
        _, offsets_buffer, data = lines.buffers()
        offsets = pa.Array.from_buffers(
            pa.int32(), len(lines) + 1, [None, offsets_buffer], offset=lines.offset
        )
        self.stream.write(data[offsets[0].as_py() : offsets[-1].as_py()])

    def commit(self, state: Mapping[str, Any]) -> None:
        assert self.stream is not None
        self.stream.close()
        self.stream = None
        fsync_path(self.temp)
        os.replace(self.temp, self.target)
        fsync_path(str(Path(self.target).parent))
        self.committed = True

    def abort(self) -> None:
        if self.stream is not None:
            try:
                self.stream.close()
            except (OSError, pa.ArrowException):
                pass
            self.stream = None
        remove_quietly(self.temp)


_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")]


def _json_strings(values: pa.Array) -> pa.Array:
    text = values.cast(pa.string())
    for char, escaped in _ESCAPES:
        text = pc.replace_substring(text, pattern=char, replacement=escaped)
    if pc.any(pc.match_substring_regex(text, "[\\x00-\\x1f]")).as_py():
        for code in range(0x20):
            char = chr(code)
            if char not in "\n\r\t":
                text = pc.replace_substring(text, pattern=char, replacement=f"\\u{code:04x}")
    return pc.binary_join_element_wise('"', text, '"', "")


def encode_json_values(column: pa.Array) -> pa.Array:
    """Each value of ``column`` as JSON text (``null`` for nulls), vectorised for the common types."""
    dtype = column.type
    if pa.types.is_null(dtype):
        return pa.array(["null"] * len(column), pa.string())
    if pa.types.is_boolean(dtype):
        text = pc.if_else(column, "true", "false")
    elif pa.types.is_integer(dtype):
        text = column.cast(pa.string())
    elif pa.types.is_floating(dtype):
        text = column.cast(pa.string())
        for raw, token in (("nan", "NaN"), ("-inf", "-Infinity"), ("inf", "Infinity")):
            text = pc.if_else(pc.equal(text, raw), token, text)
    elif pa.types.is_decimal(dtype) or pa.types.is_date(dtype) or pa.types.is_time(dtype):
        text = _json_strings(column.cast(pa.string()))
    elif pa.types.is_timestamp(dtype):
        if dtype.tz is not None:
            utc = column.cast(pa.timestamp(dtype.unit, "UTC"))
            text = _json_strings(pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ"))
        else:
            text = _json_strings(pc.strftime(column, format="%Y-%m-%dT%H:%M:%S"))
    elif pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        text = _json_strings(column)
    elif pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        encoded = [None if v is None else base64.b64encode(v).decode() for v in column.to_pylist()]
        text = _json_strings(pa.array(encoded, pa.string()))
    else:
        dumped = [json.dumps(v, default=str, ensure_ascii=False) for v in column.to_pylist()]
        text = pa.array(dumped, pa.string())
    return pc.fill_null(text, "null")
